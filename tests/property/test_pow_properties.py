"""Differential tests: the numpy batch search returns what the reference returns (§6.4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pow import reference, vectorized


@given(
    data=st.binary(max_size=400),
    difficulty=st.integers(0, 11),
    start=st.one_of(st.integers(0, 10**6), st.integers(2**32 - 5000, 2**32 + 5000)),
    batch=st.sampled_from([1, 7, 512, 4096]),
)
def test_vectorized_equals_reference(data: bytes, difficulty: int, start: int, batch: int) -> None:
    expected = reference.search(data, difficulty, start)
    assert vectorized.search(data, difficulty, start, batch=batch) == expected
    assert expected is not None
    assert reference.verify(data, expected, difficulty)


@given(data=st.binary(max_size=100), difficulty=st.integers(4, 10), count=st.integers(0, 3000))
def test_bounded_searches_agree(data: bytes, difficulty: int, count: int) -> None:
    assert vectorized.search(data, difficulty, 0, count) == reference.search(
        data, difficulty, 0, count
    )


@given(data=st.binary(max_size=300), difficulty=st.integers(0, 8), start=st.integers(0, 10**6))
def test_search_returns_the_first_nonce_with_enough_work(
    data: bytes, difficulty: int, start: int
) -> None:
    nonce = reference.search(data, difficulty, start)
    assert nonce is not None
    assert reference.work(data, nonce) >= difficulty
    assert all(reference.work(data, n) < difficulty for n in range(start, nonce))
