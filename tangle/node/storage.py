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

What the database holds is checked before the node trusts it: ``PRAGMA quick_check`` at
open, then every row as it is read (its bytes decode, its id is their hash, its times are
numbers). A damaged data dir is a :class:`StorageError` naming the database, the table,
the row and what was wrong (expected against actual), and nothing is written or repaired.

A commit that fails for any reason (SQLite's, an ``OSError``, a bug) fails the futures of
its group, is logged once with its traceback, and the writer goes on with the next group.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tangle.constants import HASH_SIZE
from tangle.errors import TangleError
from tangle.node.errors import StorageError
from tangle.snapshot import decode_snapshot
from tangle.transaction import Transaction, decode

log = logging.getLogger(__name__)

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
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
"""SQLite's names for a damaged file (a truncated copy, a bad sector, not a database)."""
_LEFT_AS_IT_IS = (
    "the data dir is left as it is (restore it from a backup, or start in an empty --data-dir)"
)


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    raw: bytes
    arrived: float
    tx: Transaction
    """``raw`` decoded (checked: its id is the row's)."""


@dataclass(slots=True)
class _Op:
    kind: str
    """``txs``, ``confirm`` or ``prune``."""
    data: Any
    done: Future[None] = field(default_factory=Future)


class SqliteStore:
    """Attached transactions on disk, appended by one writer thread in group commits."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the database and check it, writing nothing into a damaged one.

        Raises:
            StorageError: it cannot be opened, is damaged, or is of another schema.
        """
        self.path = path
        where = "opening it"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            where = "integrity check"  # before the pragmas and the schema: nothing written
            found = [" ".join(str(r[0]).split()) for r in self._db.execute("PRAGMA quick_check(5)")]
            if found != ["ok"]:
                raise self._damaged(where, f"expected ok, got {'; '.join(found)}")
            where = "opening it"
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise self._unusable(where, exc) from exc
        version = self.get_meta("schema")
        if version is None or version == b"1":  # version 1 lacked only the confirmed table
            self.set_meta("schema", str(SCHEMA_VERSION).encode())
        elif version != str(SCHEMA_VERSION).encode():
            raise StorageError(
                f"database {path}: expected schema {SCHEMA_VERSION}, "
                f"got {version.decode(errors='replace')}"
            )
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self.commits = 0
        self.rows = 0
        self._last_failure: str | None = None
        """What the last failed commit failed of (None after a success): logged once."""
        self.on_commit: Callable[[list[bytes], StorageError | None], None] | None = None
        """Called from the writer thread once per group with the ids of the rows it held
        (and the error when the commit failed): one wake-up per group, not per row."""

    # -- before the writer starts ------------------------------------------------------

    # Every read below raises StorageError on a damaged database: which table, which row,
    # what was wrong (expected against actual).

    def get_meta(self, key: str) -> bytes | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._unusable("table meta", exc) from exc
        if row is None:
            return None
        if not isinstance(row[0], bytes):
            raise self._damaged(f"table meta, key {key!r}", f"expected bytes, got {_shown(row[0])}")
        return row[0]

    def set_meta(self, key: str, value: bytes) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            raise self._unusable("writing table meta", exc) from exc

    def load(self) -> Iterator[StoredTransaction]:
        """Every stored transaction, in attach order, each checked (see :meth:`_checked`)."""
        seq = None
        try:
            cursor = self._db.execute("SELECT seq, id, raw, arrived FROM transactions ORDER BY seq")
            for seq, tx_id, raw, arrived in cursor:
                yield self._checked(seq, tx_id, raw, arrived)
        except sqlite3.Error as exc:
            after = "" if seq is None else f" after row seq {seq}"
            raise self._unusable(f"table transactions{after}", exc) from exc

    def _checked(self, seq: int, tx_id: object, raw: object, arrived: object) -> StoredTransaction:
        where = f"table transactions, row seq {seq}"
        if not isinstance(raw, bytes):
            raise self._damaged(where, f"raw: expected bytes, got {_shown(raw)}")
        try:
            tx = decode(raw)
        except (TangleError, ValueError) as exc:
            raise self._damaged(where, f"raw does not decode: {exc}") from None
        if tx_id != tx.id:
            raise self._damaged(
                where,
                f"id: expected {tx.id.hex()} (the hash of its raw bytes), got {_shown(tx_id)}",
            )
        return StoredTransaction(raw, self._seconds(where, "arrived", arrived), tx)

    def confirmations(self) -> dict[bytes, float]:
        """Every stored confirmation: transaction id -> when."""
        confirmed: dict[bytes, float] = {}
        try:
            for rowid, tx_id, at in self._db.execute("SELECT rowid, id, at FROM confirmed"):
                where = f"table confirmed, rowid {rowid}"
                if not isinstance(tx_id, bytes) or len(tx_id) != HASH_SIZE:
                    got = f"{len(tx_id)} ({tx_id.hex()})" if isinstance(tx_id, bytes) else ""
                    raise self._damaged(
                        where, f"id: expected {HASH_SIZE} bytes, got {got or _shown(tx_id)}"
                    )
                confirmed[tx_id] = self._seconds(where, "at", at)
        except sqlite3.Error as exc:
            raise self._unusable("table confirmed", exc) from exc
        return confirmed

    def snapshot(self) -> bytes | None:
        """The encoded snapshot the stored history starts from (None: the genesis),
        checked to decode."""
        stored = self.get_meta("snapshot")
        if stored is not None:
            try:
                decode_snapshot(stored)
            except (TangleError, ValueError) as exc:
                raise self._damaged(
                    "table meta, key 'snapshot'", f"does not decode: {exc}"
                ) from None
        return stored

    def count(self) -> int:
        try:
            (n,) = self._db.execute("SELECT COUNT(*) FROM transactions").fetchone()
        except sqlite3.Error as exc:
            raise self._unusable("table transactions", exc) from exc
        return int(n)

    def _seconds(self, where: str, column: str, value: object) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._damaged(
                where, f"{column}: expected seconds since the epoch, got {_shown(value)}"
            )
        return float(value)

    def _damaged(self, where: str, problem: str) -> StorageError:
        return StorageError(f"corrupt database {self.path}: {where}: {problem}; {_LEFT_AS_IT_IS}")

    def _unusable(self, where: str, exc: sqlite3.Error | OSError) -> StorageError:
        """SQLite's (or the OS's) error at ``where`` (opening it, a table) as a StorageError:
        a damaged file is said to be one."""
        if getattr(exc, "sqlite_errorname", "") in _CORRUPT:
            return self._damaged(where, str(exc))
        return StorageError(f"cannot use the database {self.path}: {where}: {exc}")

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
        writer = self._writer
        if writer is None or not writer.is_alive():  # nobody would ever read the queue
            error = StorageError(f"writing to {self.path}: the writer thread is not running")
            self._settle([op], error)
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
        """Write ``group`` in one transaction, then settle its futures and tell the node.
        Never raises: whatever fails fails this group only, and the writer goes on."""
        try:
            self._transaction(group)
        except Exception as exc:  # not only SQLite's: an OSError or a bug must not end us
            error: StorageError | None = self._failed(group, exc)
        else:
            error = None
            self._last_failure = None
            self.commits += 1
            self.rows += sum(len(op.data) for op in group if op.kind == "txs")
        self._settle(group, error)

    def _transaction(self, group: list[_Op]) -> None:
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

    def _failed(self, group: list[_Op], exc: Exception) -> StorageError:
        """Roll back, log once (the traceback the first time this failure is seen: a
        retried commit that fails alike says so in one line), and the error for waiters."""
        with contextlib.suppress(Exception):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        cause = str(exc) if isinstance(exc, sqlite3.Error) else f"{type(exc).__name__}: {exc}"
        error = StorageError(f"writing {len(group)} changes to {self.path}: {cause}")
        if cause == self._last_failure:
            log.error("%s (the same failure again)", error)
        else:
            log.error("%s", error, exc_info=exc)
        self._last_failure = cause
        return error

    def _settle(self, group: list[_Op], error: StorageError | None) -> None:
        for op in group:
            with contextlib.suppress(InvalidStateError):  # a caller may have given up on it
                if error is None:
                    op.done.set_result(None)
                else:
                    op.done.set_exception(error)
        if self.on_commit is None:
            return
        ids = [row[0] for op in group if op.kind == "txs" for row in op.data]
        try:
            self.on_commit(ids, error)
        except Exception:  # e.g. the event loop is closed: the writer goes on all the same
            log.exception("the node was not told of a commit of %d rows", len(ids))

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


def _shown(value: object) -> str:
    """A value read from SQLite, for an error message: its kind and (the start of) it."""
    if isinstance(value, bytes):
        return value[:64].hex() + ("..." if len(value) > 64 else "") if value else "no bytes"
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    if value is None:
        return "NULL"
    return f"{type(value).__name__} {value!r}"
