"""The fast searchers: the numpy batch search and the process pool (PROTOCOL §6.4).

Each must return exactly what the reference returns: the smallest valid nonce.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import pow
from pow import reference, vectorized
from pow.pool import PoolSearcher, Stop, search_for
from pow.reference import MAX_NONCE
from pow.vectorized import BatchSearcher, Target

DATA = b"a 200-byte payment, more or less" * 6


@pytest.fixture(scope="module")
def pool() -> PoolSearcher:
    with PoolSearcher(workers=2, chunk=1 << 14) as searcher:
        yield searcher  # type: ignore[misc]


def test_hash_words_are_bit_exact_with_hashlib() -> None:  # §6.1
    prefix = reference.pow_prefix(DATA)
    searcher = BatchSearcher(prefix, 512)
    for start in (0, 1_000_000, 2**32 - 600, 2**40 + 7, MAX_NONCE - 511):
        words = searcher.hash_words(start)
        for lane in (0, 1, 255, 511):
            nonce = start + lane
            if nonce // 2**32 != start // 2**32:  # past a 2**32 line: ignored by design
                continue
            digest = b"".join(int(w[lane]).to_bytes(4, "little") for w in words)
            assert digest == reference.pow_hash(prefix, nonce), (start, lane)


@pytest.mark.parametrize("difficulty", [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 256])
def test_target_masks_match_leading_zero_bits(difficulty: int) -> None:
    """The little-endian masks say 'at least d leading zero bits', no more, no less."""
    target = Target.for_difficulty(difficulty)
    for digest in (bytes(32), b"\x00\x00\x01" + bytes(29), b"\x00\x80" + bytes(30), b"\xff" * 32):
        words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]
        passes = all(w & m == 0 for w, m in zip(words, target.masks, strict=False))
        assert passes == (pow.leading_zero_bits(digest) >= difficulty), digest.hex()


@pytest.mark.parametrize("difficulty", [0, 3, 10, 14])
def test_vectorized_equals_reference(difficulty: int) -> None:
    for start in (0, 5_000, 2**32 - 3_000):
        assert vectorized.search(DATA, difficulty, start) == reference.search(
            DATA, difficulty, start
        )


def test_vectorized_respects_count() -> None:
    first = reference.search(DATA, 10)
    assert first is not None
    assert vectorized.search(DATA, 10, 0, count=first) is None
    assert vectorized.search(DATA, 10, 0, count=first + 1) == first


def test_vectorized_crosses_a_2_pow_32_line() -> None:
    """A batch straddling 2**32 must not report a nonce hashed with the wrong high word."""
    start = 2**32 - 1_000
    assert vectorized.search(DATA, 12, start) == reference.search(DATA, 12, start)


def test_vectorized_near_the_end_of_the_nonce_space() -> None:
    start = MAX_NONCE - 300
    assert vectorized.search(DATA, 4, start) == reference.search(DATA, 4, start)
    assert vectorized.search(DATA, 20, start) is None


def test_solve_front_door_matches_reference() -> None:
    for difficulty in (2, 12):
        assert pow.solve(DATA, difficulty) == reference.search(DATA, difficulty)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"difficulty: expected 0\.\.256"):
        vectorized.search(DATA, 300)
    with pytest.raises(ValueError, match="prefix: expected 32 bytes"):
        BatchSearcher(b"short")
    with pytest.raises(ValueError, match="batch"):
        BatchSearcher(bytes(32), batch=0)


# -- bounded single-core search ---------------------------------------------------------


def test_search_for_finds_and_reports() -> None:
    result = search_for(DATA, 12)
    assert result.stop is Stop.FOUND
    assert result.nonce == reference.search(DATA, 12)
    assert result.searched == result.nonce


def test_search_for_times_out_and_resumes() -> None:
    ticks = iter(range(1000))
    result = search_for(DATA, 60, time_limit=3, clock=lambda: float(next(ticks)))
    assert result.stop is Stop.TIMEOUT
    assert result.nonce is None
    assert result.searched > 0  # a resumed search starts at start + searched


def test_search_for_cancel_and_progress() -> None:
    cancel = threading.Event()
    seen: list[int] = []
    ticks = iter(range(1000))

    def progress(p: pow.pool.Progress) -> None:
        seen.append(p.searched)
        if len(seen) == 2:
            cancel.set()

    result = search_for(DATA, 60, cancel=cancel, progress=progress, clock=lambda: next(ticks))
    assert result.stop is Stop.CANCELLED
    assert seen == sorted(seen)
    assert seen[1] > seen[0]


def test_search_for_exhausts_a_range() -> None:
    result = search_for(DATA, 40, 0, count=10_000)
    assert result.stop is Stop.EXHAUSTED
    assert result.searched == 10_000


# -- the process pool ---------------------------------------------------------------------


@pytest.mark.parametrize("difficulty", [0, 6, 13, 16])
def test_pool_equals_reference(pool: PoolSearcher, difficulty: int) -> None:
    result = pool.search(DATA, difficulty, start=777)
    assert result.stop is Stop.FOUND
    assert result.nonce == reference.search(DATA, difficulty, 777)
    assert pow.verify(DATA, result.nonce, difficulty)


def test_pool_takes_the_smallest_hit_across_chunks(pool: PoolSearcher) -> None:
    """With tiny chunks, later chunks finish first; the answer is still the smallest."""
    with PoolSearcher(workers=2, chunk=64) as small:
        for start in (0, 1000):
            assert small.search(DATA, 9, start).nonce == reference.search(DATA, 9, start)


def test_pool_exhausts_a_range(pool: PoolSearcher) -> None:
    result = pool.search(DATA, 40, 0, count=50_000)
    assert result.stop is Stop.EXHAUSTED
    assert result.searched == 50_000
    assert pool.search(DATA, 3, 0, count=0).stop is Stop.EXHAUSTED


def test_pool_cancellation_is_prompt(pool: PoolSearcher) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    began = time.monotonic()
    result = pool.search(DATA, 64, cancel=cancel)
    stopped_after = time.monotonic() - began - 0.3
    assert result.stop is Stop.CANCELLED
    assert stopped_after < 1.0, f"took {stopped_after:.2f} s to stop"
    # the pool is still usable, and the next search is not disturbed
    assert pool.search(DATA, 8).nonce == reference.search(DATA, 8)


def test_pool_timeout_reports_where_to_resume(pool: PoolSearcher) -> None:
    progress: list[pow.pool.Progress] = []
    result = pool.search(DATA, 64, time_limit=0.6, progress=progress.append)
    assert result.stop is Stop.TIMEOUT
    assert result.searched > 0
    assert result.searched % pool.chunk == 0  # a contiguous prefix of the range
    assert progress
    assert progress[-1].expected == 2.0**64


async def test_pool_search_async_and_task_cancellation(pool: PoolSearcher) -> None:
    result = await pool.search_async(DATA, 12)
    assert result.nonce == reference.search(DATA, 12)
    task = asyncio.create_task(pool.search_async(DATA, 64))
    await asyncio.sleep(0.3)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 1.0


def test_an_ended_search_leaves_no_chunk_running() -> None:
    """Chunks still out when a search ends stop at their next batch, and their partial
    work is counted: neither the search nor the next one waits for them to finish.
    A chunk here is 2**24 nonces, seconds of hashing on one core."""
    chunk = 1 << 24
    with PoolSearcher(workers=2, chunk=chunk) as big:
        easy = big.search(DATA, 4)  # a hit at once; the other chunks are cut short
        assert easy.nonce == reference.search(DATA, 4)
        assert easy.hashed < chunk
        began = time.monotonic()
        timed_out = big.search(DATA, 64, time_limit=0.2)
        assert timed_out.stop is Stop.TIMEOUT
        assert timed_out.searched == 0  # no chunk came back whole
        assert 0 < timed_out.hashed < chunk  # but the hashing done is counted
        assert time.monotonic() - began < 0.2 + 1.0  # not the seconds a chunk takes


def test_a_pool_whose_worker_died_fails_one_search_and_recovers() -> None:
    import os
    import signal
    from concurrent.futures.process import BrokenProcessPool

    with PoolSearcher(workers=2, chunk=1 << 14) as fragile:
        worker = next(iter(fragile._executor._processes))  # type: ignore[attr-defined]
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            fragile.search(DATA, 64, time_limit=2.0)
        assert fragile.search(DATA, 8).nonce == reference.search(DATA, 8)
