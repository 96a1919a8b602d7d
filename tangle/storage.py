"""Durable storage of attached transactions in SQLite (layer 4).

One writer thread owns the write connection and commits in groups: it takes every
waiting append (up to ``GROUP_LIMIT``), writes them in one transaction, commits, and
only then resolves their futures. With WAL and ``synchronous=FULL`` a resolved future
means the rows survive a crash or ``kill -9``; a node acknowledges a transaction only
after that (PROTOCOL §9 says nothing of storage; this is the node's promise).

Rows keep the attach order (``seq``), which is a topological order, so a restart
replays them into a fresh tangle exactly as they first arrived.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

GROUP_LIMIT = 1000
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    arrived REAL NOT NULL
);
"""


class StorageError(Exception):
    """The database cannot be opened or written; the message says which and why."""


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    raw: bytes
    arrived: float


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
        if version is None:
            self.set_meta("schema", str(SCHEMA_VERSION).encode())
        elif version != str(SCHEMA_VERSION).encode():
            raise StorageError(
                f"database {path}: expected schema {SCHEMA_VERSION}, got {version.decode()}"
            )
        self._queue: queue.Queue[tuple[bytes, bytes, float, Future[None]] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self.commits = 0
        self.rows = 0

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
        done: Future[None] = Future()
        if self._writer is None:
            done.set_exception(StorageError("the store is not started"))
            return done
        self._queue.put((tx_id, raw, arrived, done))
        return done

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while len(group) < GROUP_LIMIT:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._commit(group)
                    return
                group.append(nxt)
            self._commit(group)

    def _commit(self, group: list[tuple[bytes, bytes, float, Future[None]]]) -> None:
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO transactions (id, raw, arrived) VALUES (?, ?, ?)",
                [(tx_id, raw, arrived) for tx_id, raw, arrived, _ in group],
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            error = StorageError(f"writing {len(group)} transactions to {self.path}: {exc}")
            for *_, done in group:
                done.set_exception(error)
            return
        self.commits += 1
        self.rows += len(group)
        for *_, done in group:
            done.set_result(None)

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the database."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self._db.close()
