"""Durable storage of attached transactions in SQLite (layer 4).

One writer thread owns the write connection and commits in groups: it takes every
waiting append (up to ``GROUP_LIMIT``), writes them in one transaction, commits, and
only then resolves their futures. With WAL and ``synchronous=FULL`` a resolved future
means the rows survive a crash or ``kill -9``; a node acknowledges a transaction only
after that (PROTOCOL §9 says nothing of storage; this is the node's promise).

Rows keep the attach order (``seq``), which is a topological order, so a restart
replays them into a fresh tangle exactly as they first arrived. Confirmations are kept
too (a restart must not forget them), and so is the snapshot the tangle starts from:
pruning writes the new snapshot and deletes the rows it replaces in one transaction,
so a crash leaves either the old state or the new one, never a mix (PROTOCOL §8.5).
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tangle.node.errors import StorageError

GROUP_LIMIT = 1000
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    arrived REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS confirmed (id BLOB PRIMARY KEY, at REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    raw: bytes
    arrived: float


@dataclass(slots=True)
class _Op:
    kind: str
    """``txs``, ``confirm`` or ``prune``."""
    data: Any
    done: Future[None] = field(default_factory=Future)


class SqliteStore:
    """Attached transactions on disk, appended by one writer thread in group commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from exc
        version = self.get_meta("schema")
        if version is None or version == b"1":  # version 1 lacked only the confirmed table
            self.set_meta("schema", str(SCHEMA_VERSION).encode())
        elif version != str(SCHEMA_VERSION).encode():
            raise StorageError(
                f"database {path}: expected schema {SCHEMA_VERSION}, got {version.decode()}"
            )
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self.commits = 0
        self.rows = 0
        self.on_commit: Callable[[list[bytes], StorageError | None], None] | None = None
        """Called from the writer thread once per group with the ids of the rows it held
        (and the error when the commit failed): one wake-up per group, not per row."""

    # -- before the writer starts ------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def load(self) -> Iterator[StoredTransaction]:
        """Every stored transaction, in attach order."""
        cursor = self._db.execute("SELECT raw, arrived FROM transactions ORDER BY seq")
        for raw, arrived in cursor:
            yield StoredTransaction(bytes(raw), float(arrived))

    def confirmations(self) -> dict[bytes, float]:
        """Every stored confirmation: transaction id -> when."""
        rows = self._db.execute("SELECT id, at FROM confirmed")
        return {bytes(tx_id): float(at) for tx_id, at in rows}

    def snapshot(self) -> bytes | None:
        """The encoded snapshot the stored history starts from (None: the genesis)."""
        return self.get_meta("snapshot")

    def count(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM transactions").fetchone()
        return int(n)

    # -- the writer ----------------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer")
            self._writer.start()

    def append(self, tx_id: bytes, raw: bytes, arrived: float) -> Future[None]:
        """Queue one row; the future resolves once it is committed (durable)."""
        return self._put(_Op("txs", [(tx_id, raw, arrived)]))

    def append_many(self, rows: list[tuple[bytes, bytes, float]]) -> Future[None]:
        """Queue rows (id, raw, arrived) in one hand-over to the writer."""
        return self._put(_Op("txs", rows))

    def confirm(self, tx_ids: Sequence[bytes], at: float) -> Future[None]:
        """Record confirmations (rows that are not stored yet are kept all the same)."""
        return self._put(_Op("confirm", [(tx_id, at) for tx_id in tx_ids]))

    def prune(self, snapshot: bytes, drop: Sequence[bytes]) -> Future[None]:
        """Replace the snapshot and delete the rows (and confirmations) it replaces, in
        one transaction, after everything queued before."""
        return self._put(_Op("prune", (snapshot, drop)))

    def _put(self, op: _Op) -> Future[None]:
        if self._writer is None:
            op.done.set_exception(StorageError("the store is not started"))
            return op.done
        self._queue.put(op)
        return op.done

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while len(group) < GROUP_LIMIT and item.kind != "prune":
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._commit(group)
                    return
                if nxt.kind == "prune":  # a prune commits alone: its failure is its own
                    self._commit(group)
                    group = [nxt]
                    break
                group.append(nxt)
            self._commit(group)

    def _commit(self, group: list[_Op]) -> None:
        try:
            self._db.execute("BEGIN")
            rows: list[tuple[bytes, bytes, float]] = []
            for op in group:
                if op.kind == "txs":
                    rows.extend(op.data)
                    continue
                self._insert(rows)  # in order: rows queued before a prune go first
                rows = []
                self._apply(op)
            self._insert(rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            error = StorageError(f"writing {len(group)} changes to {self.path}: {exc}")
            for op in group:
                if not op.done.done():  # a caller may have given up waiting
                    op.done.set_exception(error)
            self._notify(group, error)
            return
        self.commits += 1
        self.rows += sum(len(op.data) for op in group if op.kind == "txs")
        for op in group:
            if not op.done.done():
                op.done.set_result(None)
        self._notify(group, None)

    def _notify(self, group: list[_Op], error: StorageError | None) -> None:
        if self.on_commit is not None:
            self.on_commit([row[0] for op in group if op.kind == "txs" for row in op.data], error)

    def _insert(self, rows: list[tuple[bytes, bytes, float]]) -> None:
        if rows:
            self._db.executemany(
                "INSERT OR IGNORE INTO transactions (id, raw, arrived) VALUES (?, ?, ?)", rows
            )

    def _apply(self, op: _Op) -> None:
        db = self._db
        if op.kind == "confirm":
            db.executemany("INSERT OR IGNORE INTO confirmed (id, at) VALUES (?, ?)", op.data)
        else:
            snapshot, drop = op.data
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot', ?)", (snapshot,)
            )
            db.executemany("DELETE FROM transactions WHERE id = ?", [(t,) for t in drop])
            db.executemany("DELETE FROM confirmed WHERE id = ?", [(t,) for t in drop])

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the database."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self._db.close()
