"""The wallet's state: addresses, payments with their idempotency keys, the fleet.

One SQLite file (``wallet.db`` beside the keystore). SQLite, not JSON files, because a
payment's idempotency record, its transaction and the daily-cap ledger must change
together or not at all, and because the ``autotopup`` daemon and a ``send`` typed by
hand may write at the same moment: SQLite gives both (transactions, file locks).

A *batch* is one transaction the wallet issues (a send, a fleet top-up of many rows, a
consolidation); each of its *payments* is one recipient and amount, with an optional
idempotency key. Every transaction id issued for a batch (the first, reattachments,
promotions) is kept in ``batch_txs``.

This module is the wallet's boundary to SQLite: every ``sqlite3.Error`` (a locked,
damaged or foreign file) and ``OSError`` of the state file becomes a
:class:`~wallet.errors.StateError` naming the file.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from wallet.errors import StateError

SCHEMA = """
CREATE TABLE IF NOT EXISTS addresses (
    idx INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE, label TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, source_idx INTEGER NOT NULL,
    tx_id TEXT, raw TEXT, status TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batch_txs (
    batch_id INTEGER NOT NULL REFERENCES batches(id), tx_id TEXT NOT NULL,
    kind TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (batch_id, tx_id));
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE,
    batch_id INTEGER NOT NULL REFERENCES batches(id), recipient TEXT NOT NULL,
    amount INTEGER NOT NULL, device TEXT, day TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS payments_device_day ON payments (device, day);
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY, address TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY REFERENCES devices(name), min INTEGER NOT NULL,
    target INTEGER NOT NULL, daily_cap INTEGER);
"""

BUILDING = "building"
"""Recorded, no transaction built yet (a crash here issued nothing)."""
SUBMITTED = "submitted"
"""A transaction was built and handed to the node; its status comes from the node."""
FAILED = "failed"


P = ParamSpec("P")
R = TypeVar("R")


def _mapped(
    method: Callable[Concatenate[WalletState, P], R],
) -> Callable[Concatenate[WalletState, P], R]:
    """``method`` with SQLite's and the OS's errors as :class:`StateError`."""

    @functools.wraps(method)
    def run(self: WalletState, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StateError(self.path, reason) from None

    return run


def utc_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


@dataclass(frozen=True, slots=True)
class AddressRow:
    index: int
    address: str
    label: str


@dataclass(frozen=True, slots=True)
class PaymentRow:
    key: str | None
    recipient: str
    amount: int
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    kind: str
    source_idx: int
    tx_id: str | None
    raw: str | None
    status: str
    note: str
    created: float
    payments: tuple[PaymentRow, ...]
    tx_ids: tuple[str, ...]
    """Every id of this payment: the first, resubmissions and reattachments (same inputs)."""
    promotions: tuple[str, ...] = ()
    """Empty transactions issued to approve it."""


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    min: int
    target: int
    daily_cap: int | None


class WalletState:
    """The SQLite file; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open()

    @_mapped
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            self.path.chmod(0o600)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except BaseException:
            self.db.close()
            raise

    @_mapped
    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- addresses --------------------------------------------------------------------------

    @_mapped
    def addresses(self) -> list[AddressRow]:
        rows = self.db.execute("SELECT idx, address, label FROM addresses ORDER BY idx")
        return [AddressRow(*r) for r in rows]

    @_mapped
    def add_address(self, index: int, address: str, label: str = "") -> AddressRow:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO addresses (idx, address, label, created) VALUES (?,?,?,?)",
                (index, address, label, time.time()),
            )
            if label:
                db.execute("UPDATE addresses SET label=? WHERE idx=?", (label, index))
        return AddressRow(index, address, label)

    @_mapped
    def set_label(self, index: int, label: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE addresses SET label=? WHERE idx=?", (label, index))

    # -- payments ---------------------------------------------------------------------------

    @_mapped
    def payment_by_key(self, key: str) -> tuple[PaymentRow, int] | None:
        row = self.db.execute(
            "SELECT key, recipient, amount, device, batch_id FROM payments WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        return PaymentRow(row[0], row[1], row[2], row[3]), row[4]

    @_mapped
    def begin_batch(
        self, kind: str, source_idx: int, payments: Iterable[PaymentRow], now: float
    ) -> int:
        """Record the intended payments (and their keys) before anything is built."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO batches (kind, source_idx, status, created, updated)"
                " VALUES (?,?,?,?,?)",
                (kind, source_idx, BUILDING, now, now),
            )
            batch_id = cur.lastrowid
            assert batch_id is not None
            db.executemany(
                "INSERT INTO payments (key, batch_id, recipient, amount, device, day, created)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (p.key, batch_id, p.recipient, p.amount, p.device, utc_day(now), now)
                    for p in payments
                ],
            )
        return batch_id

    @_mapped
    def record_tx(self, batch_id: int, tx_id: str, raw: str, kind: str) -> None:
        """A transaction built for the batch, written before it is submitted."""
        now = time.time()
        with self.transaction() as db:
            if kind != "promote":
                db.execute(
                    "UPDATE batches SET tx_id=?, raw=?, status=?, updated=? WHERE id=?",
                    (tx_id, raw, SUBMITTED, now, batch_id),
                )
            db.execute(
                "INSERT OR IGNORE INTO batch_txs (batch_id, tx_id, kind, created) VALUES (?,?,?,?)",
                (batch_id, tx_id, kind, now),
            )

    @_mapped
    def set_current(self, batch_id: int, tx_id: str) -> None:
        """Another id of the batch (an earlier one that confirmed after all) is the one."""
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET tx_id=?, updated=? WHERE id=?", (tx_id, time.time(), batch_id)
            )

    @_mapped
    def set_status(self, batch_id: int, status: str, note: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET status=?, note=COALESCE(?, note), updated=? WHERE id=?",
                (status, note, time.time(), batch_id),
            )

    @_mapped
    def drop_batch(self, batch_id: int) -> None:
        """Forget a batch for which nothing was built: its keys may be used again."""
        with self.transaction() as db:
            row = db.execute("SELECT raw FROM batches WHERE id=?", (batch_id,)).fetchone()
            if row is None or row[0] is not None:
                raise AssertionError(f"batch {batch_id} has a transaction; it is kept")
            db.execute("DELETE FROM payments WHERE batch_id=?", (batch_id,))
            db.execute("DELETE FROM batch_txs WHERE batch_id=?", (batch_id,))
            db.execute("DELETE FROM batches WHERE id=?", (batch_id,))

    @_mapped
    def batch(self, batch_id: int) -> Batch:
        row = self.db.execute(
            "SELECT id, kind, source_idx, tx_id, raw, status, note, created FROM batches"
            " WHERE id=?",
            (batch_id,),
        ).fetchone()
        if row is None:
            raise KeyError(batch_id)
        payments = tuple(
            PaymentRow(*p)
            for p in self.db.execute(
                "SELECT key, recipient, amount, device FROM payments WHERE batch_id=? ORDER BY id",
                (batch_id,),
            )
        )
        issued = list(
            self.db.execute(
                "SELECT tx_id, kind FROM batch_txs WHERE batch_id=? ORDER BY created, rowid",
                (batch_id,),
            )
        )
        tx_ids = tuple(t for t, kind in issued if kind != "promote")
        promotions = tuple(t for t, kind in issued if kind == "promote")
        return Batch(
            id=row[0],
            kind=row[1],
            source_idx=row[2],
            tx_id=row[3],
            raw=row[4],
            status=row[5],
            note=row[6],
            created=row[7],
            payments=payments,
            tx_ids=tx_ids,
            promotions=promotions,
        )

    @_mapped
    def batches(self, limit: int | None = None) -> list[Batch]:
        ids = [
            i
            for (i,) in self.db.execute(
                "SELECT id FROM batches ORDER BY id DESC LIMIT ?", (limit or -1,)
            )
        ]
        return [self.batch(i) for i in ids]

    @_mapped
    def batch_of_tx(self, tx_id: str) -> Batch | None:
        row = self.db.execute("SELECT batch_id FROM batch_txs WHERE tx_id=?", (tx_id,)).fetchone()
        return None if row is None else self.batch(row[0])

    @_mapped
    def topped_up_today(self, device: str, now: float) -> int:
        """The daily-cap ledger: what ``autotopup`` paid ``device`` this UTC day."""
        (total,) = self.db.execute(
            "SELECT COALESCE(SUM(p.amount), 0) FROM payments p JOIN batches b ON b.id=p.batch_id"
            " WHERE p.device=? AND p.day=? AND b.kind='autotopup' AND b.status != ?",
            (device, utc_day(now), FAILED),
        ).fetchone()
        return int(total)

    # -- fleet ------------------------------------------------------------------------------

    @_mapped
    def add_device(self, name: str, address: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO devices (name, address, created) VALUES (?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET address=excluded.address",
                (name, address, time.time()),
            )

    @_mapped
    def devices(self) -> list[Device]:
        return [
            Device(*r) for r in self.db.execute("SELECT name, address FROM devices ORDER BY name")
        ]

    @_mapped
    def device(self, name: str) -> Device | None:
        row = self.db.execute("SELECT name, address FROM devices WHERE name=?", (name,)).fetchone()
        return None if row is None else Device(*row)

    @_mapped
    def set_policy(self, policy: Policy) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO policies (name, min, target, daily_cap) VALUES (?,?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET min=excluded.min, target=excluded.target,"
                " daily_cap=excluded.daily_cap",
                (policy.name, policy.min, policy.target, policy.daily_cap),
            )

    @_mapped
    def policies(self) -> list[Policy]:
        return [
            Policy(*r)
            for r in self.db.execute(
                "SELECT name, min, target, daily_cap FROM policies ORDER BY name"
            )
        ]
