"""What a paywall remembers: its open invoices, and the payments it has served.

The record of consumed payments is what stops a payment from being served twice; in
SQLite (:class:`SqliteStore`) it survives a restart. This module is that file's boundary:
``sqlite3.Error`` becomes :class:`~wallet.errors.StateError`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from tangle.transaction import TxId
from wallet.errors import StateError
from wallet.x402.protocol import Invoice

MAX_INVOICES = 10_000
"""Invoices kept at most (the default of :attr:`Paywall.max_invoices`); the oldest unpaid
ones are forgotten first, an invoice a payment was presented for never."""


class InvoiceStore(Mapping[bytes, Invoice]):
    """Open invoices by nonce, oldest first."""

    def __init__(self) -> None:
        self._invoices: dict[bytes, Invoice] = {}

    def __getitem__(self, nonce: bytes) -> Invoice:
        return self._invoices[nonce]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._invoices)

    def __len__(self) -> int:
        return len(self._invoices)

    def add(self, invoice: Invoice, now: float, limit: int = MAX_INVOICES) -> None:
        """Keep ``invoice``, first forgetting the unpaid ones expired at ``now``, then the
        oldest unpaid ones beyond ``limit``; an invoice a payment was presented for
        (``paid_by``) is kept until settled, even beyond the limit."""
        for stale in [n for n, i in self._invoices.items() if i.expires < now and not i.paid_by]:
            del self._invoices[stale]
        excess = len(self._invoices) - limit + 1
        if excess > 0:
            unpaid = [n for n, i in self._invoices.items() if i.paid_by is None]
            for old in unpaid[:excess]:
                del self._invoices[old]
        self._invoices[invoice.nonce] = invoice

    def pop(self, nonce: bytes) -> Invoice | None:
        """Forget an invoice (settled, or its payment failed)."""
        return self._invoices.pop(nonce, None)


class ConsumedStore(Protocol):
    """Where a paywall records the payments it has served; claims must be atomic."""

    def claim(self, tx_id: TxId, resource: str, amount: int) -> bool:
        """Record ``tx_id``; False when it was already recorded."""
        ...

    def consumed(self, tx_id: TxId) -> bool: ...


class MemoryStore:
    """Consumed payments in memory: for tests and servers that may forget on restart."""

    def __init__(self) -> None:
        self._ids: set[TxId] = set()
        self._lock = threading.Lock()

    def claim(self, tx_id: TxId, resource: str, amount: int) -> bool:
        with self._lock:
            if tx_id in self._ids:
                return False
            self._ids.add(tx_id)
            return True

    def consumed(self, tx_id: TxId) -> bool:
        return tx_id in self._ids


class SqliteStore:
    """Consumed payments in an SQLite file, so a restart cannot re-serve a payment.

    Raises:
        StateError: the file cannot be opened, read or written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS consumed (tx_id BLOB PRIMARY KEY,"
                " resource TEXT NOT NULL, amount TEXT NOT NULL, at REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise StateError(path, str(exc)) from None

    def claim(self, tx_id: TxId, resource: str, amount: int) -> bool:
        with self._lock:
            try:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO consumed VALUES (?, ?, ?, ?)",
                    (tx_id, resource, str(amount), time.time()),
                )
            except sqlite3.Error as exc:
                raise StateError(self.path, str(exc)) from None
            return cursor.rowcount == 1

    def consumed(self, tx_id: TxId) -> bool:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT 1 FROM consumed WHERE tx_id = ?", (tx_id,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StateError(self.path, str(exc)) from None
        return row is not None

    def close(self) -> None:
        self._db.close()
