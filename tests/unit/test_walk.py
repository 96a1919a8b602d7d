"""The MCMC walk and URTS (tangle/walk.py)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from tangle.walk import (
    McmcSelector,
    UrtsParams,
    UrtsSelector,
    WalkParams,
    within_max_depth,
)
from tangle.window import WeightWindow


def tid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def fork(window: WeightWindow, heavy: int) -> tuple[int, int]:
    """Genesis 0; approvers 1 (light: one tip) and 2 (heavy: a chain of ``heavy`` on it)."""
    window.add(tid(0), (), time=0.0)
    window.add(tid(1), (tid(0), tid(0)), time=1.0)
    window.add(tid(2), (tid(0), tid(0)), time=1.0)
    previous = 2
    for i in range(3, 3 + heavy):
        window.add(tid(i), (tid(previous), tid(previous)), time=2.0)
        previous = i
    return 1, previous


def test_walk_ends_on_a_tip_and_a_seed_reproduces_it() -> None:
    window = WeightWindow(128)
    fork(window, 5)
    selector = McmcSelector(window, WalkParams(alpha=0.0, depth=0.0))
    entry = window.slot(tid(0))
    walks = [selector.walk(entry, random.Random(7)) for _ in range(3)]
    assert len(set(walks)) == 1
    assert window.is_tip(walks[0])
    assert {selector.walk(entry, random.Random(s)) for s in range(40)} == {
        window.slot(tid(1)),
        window.slot(tid(7)),
    }


def test_alpha_zero_is_uniform_and_alpha_prefers_weight() -> None:  # eq. 13
    window = WeightWindow(128)
    light, _ = fork(window, 5)
    entry = window.slot(tid(0))
    rng = random.Random(1)
    uniform = McmcSelector(window, WalkParams(alpha=0.0))
    counts = Counter(uniform.walk(entry, rng) for _ in range(4000))
    assert counts[window.slot(tid(light))] / 4000 == pytest.approx(0.5, abs=0.04)
    weighted = McmcSelector(window, WalkParams(alpha=0.5))
    counts = Counter(weighted.walk(entry, rng) for _ in range(4000))
    # P(light) = e^(0.5 * 1) / (e^(0.5 * 1) + e^(0.5 * 6)) = 1 / (1 + e^2.5)
    expected = 1 / (1 + math.exp(2.5))
    assert counts[window.slot(tid(light))] / 4000 == pytest.approx(expected, abs=0.02)


def test_huge_weights_do_not_overflow() -> None:
    window = WeightWindow(2048)
    fork(window, 1500)
    selector = McmcSelector(window, WalkParams(alpha=10.0))  # exp(15000) would overflow
    end = selector.walk(window.slot(tid(0)), random.Random(3))
    assert end == window.slot(tid(1502))


def test_walks_only_through_walkable() -> None:
    window = WeightWindow(128)
    light, _ = fork(window, 5)
    window.walkable[window.slot(tid(2))] = False  # the heavy branch is conflicting
    selector = McmcSelector(window, WalkParams(alpha=1.0))
    ends = {selector.walk(window.slot(tid(0)), random.Random(s)) for s in range(20)}
    assert ends == {window.slot(tid(light))}


def test_entry_point_interval_and_fallbacks() -> None:
    window = WeightWindow(128)
    selector = McmcSelector(window, WalkParams(depth=10.0))
    window.add(tid(0), (), time=0.0)
    assert selector.entry_point(now=3.0) == window.slot(tid(0))  # young network
    for i in range(1, 40):
        window.add(tid(i), (tid(i - 1), tid(i - 1)), time=float(i))
    # arrived between 10 and 20 ago at now = 39: times 19..29; the heaviest is 19
    assert selector.entry_point(now=39.0) == window.slot(tid(19))
    # quiet network: nothing in [now - 20, now - 10]; the youngest old enough
    assert selector.entry_point(now=100.0) == window.slot(tid(39))
    window.walkable[:] = False
    with pytest.raises(ValueError, match="no walkable transaction"):
        selector.entry_point(now=100.0)


def test_pair_falls_back_to_one_tip_when_nothing_goes_together() -> None:
    window = WeightWindow(128)
    fork(window, 2)
    selector = McmcSelector(window, WalkParams(alpha=0.0), compatible=lambda a, b: False)
    for seed in range(10):
        trunk, branch = selector.select(random.Random(seed), now=10.0)
        assert trunk == branch


def test_max_depth_rule() -> None:
    window = WeightWindow(128)
    window.add(tid(0), (), time=0.0)
    window.add(tid(1), (tid(0), tid(0)), time=1.0)  # 0 is first approved at 1.0
    assert within_max_depth(window, (tid(1),), now=500.0, max_parent_age=5)  # a tip: fine
    assert within_max_depth(window, (tid(0),), now=5.5, max_parent_age=5)
    assert not within_max_depth(window, (tid(0),), now=6.5, max_parent_age=5)
    with pytest.raises(ValueError, match="alpha"):
        WalkParams(alpha=-1)


def test_urts_pool_rules() -> None:
    window = WeightWindow(128)
    urts = UrtsSelector(window, UrtsParams(max_children=2, max_referenced_age=3, lazy_age=5))

    def add(i: int, parents: tuple[int, ...], t: float) -> None:
        ids = tuple(tid(p) for p in parents)
        window.add(tid(i), ids, time=t)
        urts.on_arrival(tid(i), ids, t)

    add(0, (), 0.0)
    add(1, (0,), 1.0)
    assert len(urts) == 2
    add(2, (0,), 1.5)  # 0 now has two children: out of the pool
    assert set(urts._pool) == {tid(1), tid(2)}
    add(3, (1,), 2.0)  # 1 referenced at 2.0
    urts.select(random.Random(1), now=4.0)
    assert tid(1) in urts._pool
    urts.select(random.Random(1), now=5.5)  # referenced 3.5 s ago: dropped
    assert tid(1) not in urts._pool
    add(4, (2,), 20.0)  # its parent is 18.5 s old: lazy, never pooled
    assert tid(4) not in urts._pool
    trunk, branch = urts.select(random.Random(2), now=20.0)
    assert {trunk, branch} <= {tid(2), tid(3)}
    assert trunk != branch


def test_urts_empty_pool() -> None:
    urts = UrtsSelector(WeightWindow(128))
    with pytest.raises(ValueError, match="pool is empty"):
        urts.select(random.Random(1), now=0.0)
