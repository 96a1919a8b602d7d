"""Acknowledge only what is on disk: write batching and acknowledgement futures (layer 5).

Everything the node attaches in one turn of the event loop goes to the store's writer
thread at once (one group commit); the writer wakes the loop once per committed group,
and only then are the submissions waiting for those rows acknowledged (201). A failed
commit fails its waiters (the API answers 503) and is written again a second later:
the rows stay unacknowledged until they are on disk, and nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tangle.node.errors import StorageError
from tangle.node.storage import SqliteStore
from tangle.transaction import TxId

Row = tuple[bytes, bytes, float]
"""(id, canonical bytes, arrival time), as the store keeps them."""

RETRY_AFTER = 1.0
"""Seconds before rows of a failed commit are written again."""


class Durability:
    """The rows attached but not yet committed, and who waits for them."""

    def __init__(self, store: SqliteStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        """When rows wait from (a clock that does not jump with the wall clock)."""
        self.stopping = False
        self._uncommitted: dict[TxId, tuple[Row, float]] = {}
        """Attached, queued for the disk, not yet committed (not yet acknowledged): each
        row, and since when it waits (monotonic; a retried row keeps its first time)."""
        self._unwritten: list[Row] = []
        self._waiters: dict[TxId, asyncio.Future[None]] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the store's writer; its commits are handled on ``loop``."""

        def on_commit(ids: list[bytes], error: StorageError | None) -> None:
            loop.call_soon_threadsafe(self._committed, ids, error)

        self.store.on_commit = on_commit
        self.store.start()

    def write(self, tx_id: TxId, raw: bytes, arrived: float) -> None:
        """Queue a row for the next group commit (handed over at the end of this turn)."""
        self._write((tx_id, raw, arrived))

    def is_durable(self, tx_id: TxId) -> bool:
        return tx_id not in self._uncommitted

    def commit_lag(self) -> float:
        """Seconds the oldest row not yet committed has waited (0 when none waits)."""
        for _, since in self._uncommitted.values():  # insertion order: oldest first
            return max(0.0, self.clock() - since)
        return 0.0

    async def wait(self, tx_id: TxId) -> None:
        """Return once ``tx_id``'s row is committed (at once if it is).

        Raises:
            StorageError: the commit failed (it is retried; ask again later).
        """
        if tx_id not in self._uncommitted:
            return
        waiter = self._waiters.get(tx_id)
        if waiter is None:
            waiter = self._waiters[tx_id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def _write(self, row: Row) -> None:
        if not self._unwritten:
            asyncio.get_running_loop().call_soon(self._hand_over)
        self._unwritten.append(row)
        tx_id = TxId(row[0])
        waiting = self._uncommitted.get(tx_id)  # a retried row keeps its first time
        self._uncommitted[tx_id] = (row, self.clock() if waiting is None else waiting[1])

    def _hand_over(self) -> None:
        """Everything attached in this turn of the loop goes to the writer at once."""
        rows, self._unwritten = self._unwritten, []
        self.store.append_many(rows)

    def _committed(self, ids: list[bytes], error: StorageError | None) -> None:
        """On the loop, once per committed group: wake whoever waits for these rows."""
        retry = []
        for raw_id in ids:
            tx_id = TxId(raw_id)
            if error is None:
                self._uncommitted.pop(tx_id, None)
            elif tx_id in self._uncommitted:
                retry.append(self._uncommitted[tx_id][0])
            waiter = self._waiters.pop(tx_id, None)
            if waiter is not None and not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        if retry and not self.stopping:
            asyncio.get_running_loop().call_later(RETRY_AFTER, self._rewrite, retry)

    def _rewrite(self, rows: list[Row]) -> None:
        for row in rows:
            self._write(row)
