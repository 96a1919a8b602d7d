"""The weight window's bookkeeping (tangle/window.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tangle import UnknownTransaction
from tangle.window import WeightWindow


def tid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def chain(window: WeightWindow, n: int) -> None:
    window.add(tid(0), (), time=0.0)
    for i in range(1, n):
        window.add(tid(i), (tid(i - 1), tid(i - 1)), time=float(i))


def test_chain_weights() -> None:  # §7.5
    window = WeightWindow(128)
    chain(window, 10)
    assert [window.weight(tid(i)) for i in range(10)] == list(range(10, 0, -1))
    assert window.tips() == [window.slot(tid(9))]
    assert window.first_approved[window.slot(tid(3))] == 4.0
    assert window.first_approved[window.slot(tid(9))] == np.inf


def test_eviction_in_blocks_and_reuse() -> None:
    window = WeightWindow(128)
    chain(window, 128)
    assert len(window) == 128
    evicted = window.add(tid(128), (tid(127), tid(127)), time=128.0)
    assert evicted == [tid(i) for i in range(64)]  # the oldest block goes at once
    assert len(window) == 65
    assert tid(0) not in window
    assert window.weight(tid(64)) == 65  # still exact: 1 + everything after it
    assert window.parents(window.slot(tid(64))) == ()  # its parent left
    with pytest.raises(UnknownTransaction):
        window.weight(tid(5))


def test_rejects_duplicates_and_bad_capacity() -> None:
    window = WeightWindow(128)
    window.add(tid(0), (), time=0.0)
    with pytest.raises(ValueError, match="already in the window"):
        window.add(tid(0), (), time=1.0)
    with pytest.raises(ValueError, match="capacity"):
        WeightWindow(100)
    with pytest.raises(ValueError, match="empty"):
        window.id_at(5)


def test_unknown_parent_is_treated_as_outside() -> None:
    window = WeightWindow(128)
    window.add(tid(0), (), time=0.0)
    window.add(tid(1), (tid(0), tid(99)), time=1.0)  # 99 never arrived: holds no ancestors
    assert window.weight(tid(0)) == 2
