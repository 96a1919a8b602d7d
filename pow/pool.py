"""Searching on every core, and searches that give up (PROTOCOL §6.4).

:class:`PoolSearcher` splits the nonce space into chunks scanned by worker processes
(spawned, never forked, so it is safe next to threads and an event loop). It still
returns the *smallest* valid nonce: a hit in chunk k is only final once every chunk
below k has come back empty.

Every search here can stop early, by a ``cancel`` event, a ``time_limit`` or a nonce
``count``, and reports progress; the :class:`SearchResult` says why it stopped and
where to resume, so a sender can re-select its tips and carry on (Hornet re-selects
every 5 s). When a search ends (a hit, a timeout, a cancel), a counter in shared memory
moves on and every chunk still out stops after the batch it is on (a few
milliseconds): an ended search neither overruns its time limit by a chunk nor delays
the next search, which would otherwise queue behind its leftover chunks.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any

from pow.reference import nonce_range_end, pow_prefix
from pow.vectorized import BatchSearcher, Target, batch_for, scan

DEFAULT_CHUNK = 1 << 18
"""Nonces per work item: about 40 ms on one core. Few items keep the overhead of
handing them out low; cancellation does not wait for a chunk to end (see above)."""

PROGRESS_INTERVAL = 0.25
"""Seconds between progress reports."""


class Stop(Enum):
    FOUND = "found"
    EXHAUSTED = "exhausted"
    """The whole requested range was searched without a hit."""
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class SearchResult:
    nonce: int | None
    """The smallest valid nonce, when ``stop`` is FOUND."""
    stop: Stop
    searched: int
    """Nonces known to be invalid from ``start`` on: a resumed search starts past them."""
    elapsed: float
    """Seconds spent."""
    hashed: int = -1
    """Nonces hashed in all, including chunks past ``searched``; -1 means ``searched``."""

    @property
    def rate(self) -> float:
        """Hashes per second over the whole search."""
        done = self.searched if self.hashed < 0 else self.hashed
        return done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Progress:
    searched: int
    elapsed: float
    expected: float
    """Expected total nonces for this difficulty (2**difficulty)."""


ProgressCallback = Callable[[Progress], None]


def search_for(
    data: bytes,
    difficulty: int,
    start: int = 0,
    count: int | None = None,
    *,
    time_limit: float | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """A single-core vectorized search that gives up after ``time_limit`` seconds."""
    target = Target.for_difficulty(difficulty)
    end = nonce_range_end(start, count)
    searcher = BatchSearcher(pow_prefix(data), batch_for(difficulty))
    began = clock()
    last_report = began
    pos = start
    while pos < end:
        now = clock()
        if cancel is not None and cancel.is_set():
            return SearchResult(None, Stop.CANCELLED, pos - start, now - began)
        if time_limit is not None and now - began >= time_limit:
            return SearchResult(None, Stop.TIMEOUT, pos - start, now - began)
        if progress is not None and now - last_report >= PROGRESS_INTERVAL:
            progress(Progress(pos - start, now - began, float(2**difficulty)))
            last_report = now
        stop = min(end, pos + searcher.batch)
        nonce = scan(searcher, target, pos, stop)
        if nonce is not None:
            return SearchResult(nonce, Stop.FOUND, nonce - start, clock() - began)
        pos = stop
    return SearchResult(None, Stop.EXHAUSTED, end - start, clock() - began)


# -- the process pool --------------------------------------------------------------------

_cache: dict[tuple[bytes, int], BatchSearcher] = {}
_generation: Any = None
"""The worker's view of the pool's search counter (shared memory): a chunk whose search
has ended stops at its next batch instead of running to its end."""


def _init_worker(generation: Any) -> None:
    global _generation
    _generation = generation


def _scan_chunk(
    prefix: bytes, difficulty: int, start: int, end: int, generation: int
) -> tuple[int | None, int, bool]:
    """Worker: (the smallest valid nonce in [start, end) or None, nonces hashed, whether
    the chunk was searched to its end or to its hit). A chunk whose search ``generation``
    has ended (a hit below it, a timeout, a cancel) stops after the batch it is on."""
    batch = batch_for(difficulty)
    searcher = _cache.get((prefix, batch))
    if searcher is None:
        _cache.clear()  # one prefix at a time: bounded memory
        searcher = _cache[(prefix, batch)] = BatchSearcher(prefix, batch)
    target = Target.for_difficulty(difficulty)
    pos = start
    while pos < end:
        if _generation is not None and _generation.value != generation:
            return None, pos - start, False
        stop = min(end, pos + batch)
        nonce = scan(searcher, target, pos, stop)
        if nonce is not None:
            return nonce, stop - start, True
        pos = stop
    return None, end - start, True


def _warm_up(_: int) -> int:
    return os.getpid()


class PoolSearcher:
    """A reusable pool of worker processes that search together.

    One search runs at a time (a lock serialises callers). Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, workers: int | None = None, *, chunk: int = DEFAULT_CHUNK) -> None:
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ValueError(f"workers: expected >= 1, got {self.workers}")
        if chunk < 1:
            raise ValueError(f"chunk: expected >= 1, got {chunk}")
        self.chunk = chunk
        self._context = multiprocessing.get_context("spawn")
        self._generation = self._context.RawValue("Q", 0)
        self._lock = threading.Lock()
        self._executor = self._start_executor()

    def _start_executor(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(self._generation,),
        )
        # Start every worker now (spawning imports numpy: ~0.2 s), not on the first search.
        list(executor.map(_warm_up, range(self.workers)))
        return executor

    def __enter__(self) -> PoolSearcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers; pending chunks are dropped, and a search still running
        stops at its workers' next batch (and then fails)."""
        self._generation.value += 1
        self._executor.shutdown(wait=True, cancel_futures=True)

    def search(
        self,
        data: bytes,
        difficulty: int,
        start: int = 0,
        count: int | None = None,
        *,
        time_limit: float | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> SearchResult:
        """The smallest nonce in ``[start, start + count)`` meeting ``difficulty``."""
        Target.for_difficulty(difficulty)  # validates
        end = nonce_range_end(start, count)
        prefix = pow_prefix(data)
        with self._lock:
            try:
                return self._search(prefix, difficulty, start, end, time_limit, cancel, progress)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): this search fails, the next one
                # gets fresh workers.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start_executor()
                raise

    def _search(
        self,
        prefix: bytes,
        difficulty: int,
        start: int,
        end: int,
        time_limit: float | None,
        cancel: threading.Event | None,
        progress: ProgressCallback | None,
    ) -> SearchResult:
        began = time.monotonic()
        last_report = began
        generation = self._generation.value
        n_chunks = math.ceil((end - start) / self.chunk)
        running: dict[Future[tuple[int | None, int, bool]], int] = {}
        results: dict[int, int | None] = {}
        next_chunk = 0
        best_chunk = n_chunks  # lowest chunk index with a hit so far
        contiguous = 0  # chunks 0..contiguous-1 all came back
        hashed = 0

        def chunk_range(k: int) -> tuple[int, int]:
            low = start + k * self.chunk
            return low, min(end, low + self.chunk)

        def collect(future: Future[tuple[int | None, int, bool]]) -> None:
            nonlocal hashed, best_chunk
            k = running.pop(future)
            if future.cancelled():
                return
            nonce, count, complete = future.result()
            hashed += count
            if complete:
                results[k] = nonce
                if nonce is not None:
                    best_chunk = min(best_chunk, k)

        stop: Stop | None = None
        try:
            while True:
                while next_chunk < best_chunk and len(running) < 2 * self.workers:
                    low, high = chunk_range(next_chunk)
                    future = self._executor.submit(
                        _scan_chunk, prefix, difficulty, low, high, generation
                    )
                    running[future] = next_chunk
                    next_chunk += 1
                while contiguous in results:
                    contiguous += 1
                if contiguous >= best_chunk or contiguous >= n_chunks:
                    break
                poll = 0.05
                if time_limit is not None:  # wake at the limit, not up to a poll past it
                    poll = max(0.0, min(poll, began + time_limit - time.monotonic()))
                done, _ = wait(running, timeout=poll, return_when=FIRST_COMPLETED)
                for future in done:
                    collect(future)
                now = time.monotonic()
                if cancel is not None and cancel.is_set():
                    stop = Stop.CANCELLED
                elif time_limit is not None and now - began >= time_limit:
                    stop = Stop.TIMEOUT
                if stop is not None:
                    break
                if progress is not None and now - last_report >= PROGRESS_INTERVAL:
                    searched = min(end, start + contiguous * self.chunk) - start
                    progress(Progress(searched, now - began, float(2**difficulty)))
                    last_report = now
        finally:
            # The search is over: chunks still out stop within a batch, and the next
            # search does not queue behind them.
            self._generation.value = generation + 1
            for future in running:
                future.cancel()
            wait(running)
            for future in list(running):
                collect(future)
        while contiguous in results:  # chunks that came back whole while stopping
            contiguous += 1
        elapsed = time.monotonic() - began
        if best_chunk < n_chunks and contiguous >= best_chunk:
            nonce = results[best_chunk]
            assert nonce is not None
            return SearchResult(nonce, Stop.FOUND, nonce - start, elapsed, hashed)
        searched = min(end, start + contiguous * self.chunk) - start
        return SearchResult(None, stop or Stop.EXHAUSTED, searched, elapsed, hashed)

    async def search_async(
        self,
        data: bytes,
        difficulty: int,
        start: int = 0,
        count: int | None = None,
        *,
        time_limit: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> SearchResult:
        """:meth:`search` from a coroutine: runs in a thread, never on the event loop.

        Cancelling the awaiting task cancels the search, and waits for it to stop.
        """
        cancel = threading.Event()
        task = asyncio.ensure_future(
            asyncio.to_thread(
                self.search,
                data,
                difficulty,
                start,
                count,
                time_limit=time_limit,
                cancel=cancel,
                progress=progress,
            )
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait([task])
            raise
