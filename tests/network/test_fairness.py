"""The fair ingest queue: deficit round robin, per-source and total bounds (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tangle.node.fairness import FairQueue


def test_a_busy_source_cannot_starve_a_quiet_one() -> None:
    fair: FairQueue[str, str] = FairQueue(capacity=10_000, share=5_000, quantum=300)
    for i in range(2_000):
        fair.put("flooder", f"f{i}", 300, now=0.0)
    for i in range(10):
        fair.put("honest", f"h{i}", 300, now=1.0)
    first = fair.take(20)
    assert [x for x in first if x.startswith("h")] == [f"h{i}" for i in range(10)]
    assert first[:4] == ["f0", "h0", "f1", "h1"]  # one quantum each, in turn


def test_credit_is_in_bytes_so_big_items_take_more_turns() -> None:
    fair: FairQueue[str, str] = FairQueue(capacity=100, share=100, quantum=1000)
    for i in range(4):
        fair.put("big", f"B{i}", 2000, now=0.0)
        fair.put("small", f"s{i}", 500, now=0.0)
    order = fair.take(12)
    # per round "small" gets 2 items (1000 bytes); "big" gets one item every two rounds
    assert order == ["s0", "s1", "B0", "s2", "s3", "B1", "B2", "B3"]


def test_bounds_refuse_early_and_count() -> None:
    fair: FairQueue[str, int] = FairQueue(capacity=5, share=3, quantum=10)
    assert [fair.put("a", i, 1, 0.0) for i in range(4)] == [True, True, True, False]
    assert [fair.put("b", i, 1, 0.0) for i in range(3)] == [True, True, False]
    assert len(fair) == 5
    assert fair.refused == 2
    fair.take(2)
    assert fair.put("b", 9, 1, 0.0)


def test_the_oldest_item_sets_the_age() -> None:
    fair: FairQueue[str, int] = FairQueue(capacity=10, share=10, quantum=10)
    assert fair.oldest_age(5.0) == 0.0
    fair.put("a", 1, 1, now=2.0)
    fair.put("b", 2, 1, now=3.0)
    assert fair.oldest_age(5.0) == 3.0
    fair.take(1)
    assert fair.oldest_age(5.0) == 2.0


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="share"):
        FairQueue(capacity=2, share=3, quantum=1)
    with pytest.raises(ValueError, match="quantum"):
        FairQueue(capacity=2, share=1, quantum=0)


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(1, 900)), max_size=200),
    st.integers(1, 50),
)
def test_nothing_is_lost_duplicated_or_reordered_within_a_source(
    puts: list[tuple[str, int]], limit: int
) -> None:
    fair: FairQueue[str, tuple[str, int]] = FairQueue(capacity=150, share=60, quantum=300)
    accepted = [(s, n) for n, (s, cost) in enumerate(puts) if fair.put(s, (s, n), cost, 0.0)]
    out: list[tuple[str, int]] = []
    while fair:
        batch = fair.take(limit)
        assert 1 <= len(batch) <= limit
        out += batch
    assert sorted(out) == sorted(accepted)
    for source in "abcd":
        assert [x for x in out if x[0] == source] == [x for x in accepted if x[0] == source]
    assert len(fair) == 0
    assert fair.sources() == 0
