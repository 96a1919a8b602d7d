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

What the database holds is checked before the node trusts it, all of it at open through a
connection that writes nothing (:func:`read_only`): ``PRAGMA quick_check``, the meta, the
snapshot, the confirmations, every row (its bytes decode, its id is their hash, its times
are numbers). It is opened to write only at the first write or :meth:`SqliteStore.start`.
A damaged data dir is a :class:`StorageError` naming the database, the table, the row and
what was wrong (expected against actual), and not a byte of it is written or merged.

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
from urllib.parse import quote

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
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
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
        """Check the database through a read-only connection (:meth:`_check`). It is opened
        to write (WAL, the schema) only at the first write or :meth:`start`: until then the
        reads are of what the check read, so a start the node refuses writes nothing.

        Raises:
            StorageError: it cannot be opened, is damaged, or is of another schema.
        """
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._meta: dict[str, bytes] = {}
        self._confirmed: dict[bytes, float] | None = None
        self._preloaded: list[StoredTransaction] | None = None
        """What the check read, handed out until the database is opened to write."""
        self._check()
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        """Set (under ``_lock``) before close() queues the writer's stop marker: a later
        change fails at once instead of waiting behind the marker for ever."""
        self.commits = 0
        self.rows = 0
        self._last_failure: str | None = None
        """What the last failed commit failed of (None after a success): logged once."""
        self.on_commit: Callable[[list[bytes], StorageError | None], None] | None = None
        """Called from the writer thread once per group with the ids of the rows it held
        (and the error when the commit failed): one wake-up per group, not per row."""

    @property
    def _db(self) -> sqlite3.Connection:
        return self._open() if self._conn is None else self._conn

    def _open(self) -> sqlite3.Connection:
        """The connection that writes, opened on first use: WAL, the schema, its version."""
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
                if self._meta.get("schema") in (None, b"1"):  # 1 lacked the confirmed table
                    db.execute(_SET_META, ("schema", str(SCHEMA_VERSION).encode()))
            except (sqlite3.Error, OSError) as exc:
                raise self._unusable("opening it", exc) from exc
            self._conn = db
        return self._conn

    def _check(self) -> None:
        """Read all of an existing database through :func:`read_only` (integrity, meta,
        snapshot, confirmations, rows); a StorageError as the reads below say."""
        if not self.path.exists():
            return  # a new data dir: nothing to check
        where = "opening it"
        try:
            with read_only(self.path) as db:
                where = "integrity check"
                found = [
                    " ".join(r[0].decode(errors="replace").split())
                    for r in db.execute("PRAGMA quick_check(5)")
                ]
                if found != ["ok"]:
                    raise self.damaged(where, f"expected ok, got {'; '.join(found)}")
                where = "the schema"
                tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
                self._meta = meta = self._read_meta(db) if b"meta" in tables else {}
                version = meta.get("schema")
                if version not in (None, b"1", str(SCHEMA_VERSION).encode()):
                    raise StorageError(
                        f"database {self.path}: expected schema {SCHEMA_VERSION}, "
                        f"got {version.decode(errors='replace')}; {_LEFT_AS_IT_IS}"
                    )
                self._checked_snapshot(meta.get("snapshot"))
                confirmed = b"confirmed" in tables
                self._confirmed = self._read_confirmations(db) if confirmed else {}
                rows = b"transactions" in tables
                self._preloaded = list(self._read_rows(db)) if rows else []
        except (sqlite3.Error, OSError) as exc:
            raise self._unusable(where, exc) from exc

    # -- before the writer starts: every read raises StorageError on a damaged database --

    def get_meta(self, key: str) -> bytes | None:
        if self._conn is None and self._confirmed is not None:
            return self._meta.get(key)  # checked
        return self._read_meta(self._db).get(key)

    def _read_meta(self, db: sqlite3.Connection) -> dict[str, bytes]:
        meta: dict[str, bytes] = {}
        try:
            for key, kind, value in db.execute(
                "SELECT CAST(key AS BLOB), typeof(value), value FROM meta"
            ):
                name = key.decode(errors="replace")
                if _kind(kind) != "blob" or not isinstance(value, bytes):
                    got = _shown(value, _kind(kind))
                    raise self.damaged(f"table meta, key {name!r}", f"expected bytes, got {got}")
                meta[name] = value
        except sqlite3.Error as exc:
            raise self._unusable("table meta", exc) from exc
        return meta

    def set_meta(self, key: str, value: bytes) -> None:
        try:
            self._db.execute(_SET_META, (key, value))
        except sqlite3.Error as exc:
            raise self._unusable("writing table meta", exc) from exc

    def load(self) -> Iterator[StoredTransaction]:
        """Every stored transaction, in attach order, each checked (see :meth:`_checked`);
        before the database is opened to write, the rows the check read."""
        if self._preloaded is not None:
            yield from self._preloaded
        else:
            yield from self._read_rows(self._db)

    def _read_rows(self, db: sqlite3.Connection) -> Iterator[StoredTransaction]:
        seq = None
        try:
            cursor = db.execute(
                "SELECT seq, typeof(id), id, typeof(raw), raw, typeof(arrived), arrived"
                " FROM transactions ORDER BY seq"
            )
            for row in cursor:
                seq = row[0]
                yield self._checked(row)
        except sqlite3.Error as exc:
            after = "" if seq is None else f" after row seq {seq}"
            raise self._unusable(f"table transactions{after}", exc) from exc

    def _checked(self, row: tuple[Any, ...]) -> StoredTransaction:
        """A row: seq, then id, raw and arrived each after its SQLite type (``typeof``: a
        text value may be read as bytes)."""
        seq, id_kind, tx_id, raw_kind, raw, arrived_kind, arrived = row
        where = f"table transactions, row seq {seq}"
        if _kind(raw_kind) != "blob" or not isinstance(raw, bytes):
            raise self.damaged(where, f"raw: expected bytes, got {_shown(raw, _kind(raw_kind))}")
        try:
            tx = decode(raw)
        except (TangleError, ValueError) as exc:
            raise self.damaged(where, f"raw does not decode: {exc}") from None
        if _kind(id_kind) != "blob" or tx_id != tx.id:
            got = _shown(tx_id, _kind(id_kind))
            raise self.damaged(
                where, f"id: expected {tx.id.hex()} (the hash of its raw bytes), got {got}"
            )
        return StoredTransaction(raw, self._seconds(where, "arrived", arrived_kind, arrived), tx)

    def confirmations(self) -> dict[bytes, float]:
        """Every stored confirmation: transaction id -> when."""
        if self._confirmed is not None:
            return dict(self._confirmed)
        return self._read_confirmations(self._db)

    def _read_confirmations(self, db: sqlite3.Connection) -> dict[bytes, float]:
        confirmed: dict[bytes, float] = {}
        try:
            for rowid, kind, tx_id, at_kind, at in db.execute(
                "SELECT rowid, typeof(id), id, typeof(at), at FROM confirmed"
            ):
                where = f"table confirmed, rowid {rowid}"
                if _kind(kind) != "blob" or not isinstance(tx_id, bytes) or len(tx_id) != HASH_SIZE:
                    is_blob = _kind(kind) == "blob" and isinstance(tx_id, bytes)
                    got = f"{len(tx_id)} ({tx_id.hex()})" if is_blob else _shown(tx_id, _kind(kind))
                    raise self.damaged(where, f"id: expected {HASH_SIZE} bytes, got {got}")
                confirmed[tx_id] = self._seconds(where, "at", at_kind, at)
        except sqlite3.Error as exc:
            raise self._unusable("table confirmed", exc) from exc
        return confirmed

    def snapshot(self) -> bytes | None:
        """The encoded snapshot the stored history starts from (None: the genesis),
        checked to decode."""
        return self._checked_snapshot(self.get_meta("snapshot"))

    def _checked_snapshot(self, stored: bytes | None) -> bytes | None:
        if stored is not None:
            try:
                decode_snapshot(stored)
            except (TangleError, ValueError) as exc:
                where = "table meta, key 'snapshot'"
                raise self.damaged(where, f"does not decode: {exc}") from None
        return stored

    def count(self) -> int:
        if self._preloaded is not None:
            return len(self._preloaded)
        try:
            (n,) = self._db.execute("SELECT COUNT(*) FROM transactions").fetchone()
        except sqlite3.Error as exc:
            raise self._unusable("table transactions", exc) from exc
        return int(n)

    def _seconds(self, where: str, column: str, kind: str | bytes, value: object) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        got = _shown(value, _kind(kind))
        raise self.damaged(where, f"{column}: expected seconds since the epoch, got {got}")

    def damaged(self, where: str, problem: str) -> StorageError:
        """The error of a damaged data dir: the database, ``where`` in it (a table, a row,
        a key) and ``problem`` (expected against actual), and that it is left as it is."""
        return StorageError(f"corrupt database {self.path}: {where}: {problem}; {_LEFT_AS_IT_IS}")

    def _unusable(self, where: str, exc: sqlite3.Error | OSError) -> StorageError:
        """SQLite's (or the OS's) error at ``where`` (opening it, a table) as a StorageError:
        a damaged file is said to be one."""
        if getattr(exc, "sqlite_errorname", "") in _CORRUPT:
            return self.damaged(where, str(exc))
        return StorageError(f"cannot use the database {self.path}: {where}: {exc}")

    # -- the writer ----------------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            self._preloaded = self._confirmed = None  # from now on the rows change
            self._open()  # here, not in the writer thread: its failure is the caller's
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
        with self._lock:  # against close(): nothing is queued behind its stop marker
            writer = self._writer
            if self._closed:
                problem = "the store is closed"
            elif writer is None or not writer.is_alive():  # nobody would read the queue
                problem = "the writer thread is not running"
            else:
                self._queue.put(op)
                return op.done
        self._settle([op], StorageError(f"writing to {self.path}: {problem}"))
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
            db.execute(_SET_META, ("snapshot", snapshot))
            db.executemany("DELETE FROM transactions WHERE id = ?", [(t,) for t in drop])
            db.executemany("DELETE FROM confirmed WHERE id = ?", [(t,) for t in drop])

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the database; a change queued
        after (or left behind the writer's stop marker) fails."""
        with self._lock:
            self._closed = True
            if self._writer is not None:
                self._queue.put(None)
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        left = []  # behind the stop marker: no writer will take them
        while not self._queue.empty():  # nobody else takes from it now, nor puts
            if (op := self._queue.get_nowait()) is not None:
                left.append(op)
        if left:
            self._settle(left, StorageError(f"writing to {self.path}: the store is closed"))
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._preloaded = self._confirmed = None  # a closed store reads from disk


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that reads ``path`` with its log and changes no byte of the data dir
    (no checkpoint, no header rewritten, no -wal or -shm left created or deleted); text is
    read as bytes, so text that is no UTF-8 is for the checks to report. With a log and its
    index (-wal, -shm): ``readonly_shm`` (SQLite builds a private index should it be stale);
    with neither nor a rollback journal: ``immutable``; else ``mode=ro``, and the -wal or
    -shm it creates is removed after."""
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    had = {wal: wal.exists(), shm: shm.exists()}
    if had[wal] and had[shm]:
        mode = "mode=ro&readonly_shm=1"
    elif not any(had.values()) and not Path(f"{path}-journal").exists():
        mode = "mode=ro&immutable=1"
    else:
        mode = "mode=ro"
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?{mode}", uri=True)
        try:
            db.text_factory = bytes
            yield db
        finally:
            db.close()
    finally:
        for created in (p for p, existed in had.items() if not existed):
            created.unlink(missing_ok=True)


def _kind(kind: str | bytes) -> str:
    """SQLite's ``typeof()`` (bytes on a connection whose ``text_factory`` is bytes)."""
    return kind.decode() if isinstance(kind, bytes) else kind


def _shown(value: object, kind: str = "") -> str:
    """A value read from SQLite, for an error message: its kind and (the start of) it
    (``kind`` "text": text read as bytes, shown as text)."""
    if kind == "text" and isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, bytes):
        return value[:64].hex() + ("..." if len(value) > 64 else "") if value else "no bytes"
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    if value is None:
        return "NULL"
    return f"{type(value).__name__} {value!r}"
