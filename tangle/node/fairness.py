"""A fair, bounded ingest queue: deficit round robin over sources (layer 5, pure).

Gossip ingest takes transactions from every peer into one stage of verification. With
one FIFO queue, a peer that sends fast (or on purpose) fills it, and the transactions of
the others wait behind it or are dropped. :class:`FairQueue` keeps one bounded queue per
source and serves them by deficit round robin (Shreedhar and Varghese, 1995): each turn,
a source with items gains ``quantum`` bytes of credit and gives items while their cost
(their size in bytes) fits its credit. So every source with items gets about the same
bytes per round, whatever the others send, and nothing is reordered within a source.

Bounds: at most ``share`` items per source and ``capacity`` in all. Past either, ``put``
says no and the caller drops the item (a gossiped transaction is not acknowledged to
anyone: the periodic INV brings it back). The clock is passed in (``now``): the queue
reports the age of its oldest item, which the node's load shedding reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)
T = TypeVar("T")


class FairQueue(Generic[S, T]):
    """Per-source bounded FIFO queues served by deficit round robin."""

    def __init__(self, capacity: int, share: int, quantum: int) -> None:
        if not 1 <= share <= capacity:
            raise ValueError(f"share: expected 1..{capacity}, got {share}")
        if quantum < 1:
            raise ValueError(f"quantum: expected >= 1 byte, got {quantum}")
        self.capacity = capacity
        self.share = share
        self.quantum = quantum
        self._queues: dict[S, deque[tuple[T, int, float]]] = {}
        """Each source's items: (item, cost in bytes, when it was put)."""
        self._active: deque[S] = deque()
        """Sources with items, in round-robin order; the first is being served."""
        self._deficit: dict[S, int] = {}
        self._in_turn = False
        """The first active source's turn began in an earlier ``take`` (no new credit)."""
        self._size = 0
        self.refused = 0
        """Items refused because a bound was reached."""

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def put(self, source: S, item: T, cost: int, now: float) -> bool:
        """Queue ``item`` (``cost`` bytes) from ``source``; False when a bound says no."""
        queue = self._queues.get(source)
        if self._size >= self.capacity or (queue is not None and len(queue) >= self.share):
            self.refused += 1
            return False
        if queue is None:
            queue = self._queues[source] = deque()
            self._active.append(source)
            self._deficit[source] = 0
        queue.append((item, cost, now))
        self._size += 1
        return True

    def take(self, limit: int) -> list[T]:
        """Up to ``limit`` items, fairly across sources."""
        taken: list[T] = []
        while self._active and len(taken) < limit:
            source = self._active[0]
            queue = self._queues[source]
            if not self._in_turn:
                self._deficit[source] += self.quantum
            self._in_turn = True
            while queue and queue[0][1] <= self._deficit[source] and len(taken) < limit:
                item, cost, _ = queue.popleft()
                self._deficit[source] -= cost
                taken.append(item)
                self._size -= 1
            if not queue:  # an empty source leaves the round with no credit kept
                self._active.popleft()
                del self._queues[source]
                del self._deficit[source]
                self._in_turn = False
            elif queue[0][1] > self._deficit[source]:
                self._active.rotate(-1)  # its credit is spent: the next source's turn
                self._in_turn = False
        return taken

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest queued item has waited (0 when empty)."""
        heads = [queue[0][2] for queue in self._queues.values()]
        return max(0.0, now - min(heads)) if heads else 0.0

    def sources(self) -> int:
        """Sources with items waiting."""
        return len(self._active)
