"""What the wallet does, for the CLI and for programs: no printing, no argument parsing.

:class:`Wallet` joins the keystore, the state file and one node. Every payment goes
through :meth:`Wallet.pay_rows`, which writes its idempotency record before anything is
built and each transaction (raw) before it is submitted, so a retry after a crash finds
the transaction and resends it instead of paying again.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tangle import schema
from tangle.address import Address, decode_address, encode_address
from tangle.constants import MAX_INPUTS, MAX_OUTPUTS
from tangle.schema import AddressView, Status
from tangle.signing import Keypair
from tangle.transaction import Transaction, TxId, decode
from wallet.client import NodeClient
from wallet.errors import (
    DoubleSpend,
    InsufficientFunds,
    NodeError,
    NotConfirmed,
    SendFailed,
    SplitFunds,
    UsageError,
)
from wallet.fleet import TopupPlan, plan_topups
from wallet.keys import derive_keypair
from wallet.keystore import load_seed, read_keystore
from wallet.payments import Payer, Solver
from wallet.state import FAILED, AddressRow, Batch, PaymentRow, WalletState

KEYSTORE_FILE = "keystore.json"
STATE_FILE = "wallet.db"
CHUNK = MAX_OUTPUTS - 1
"""Recipients per transaction: one output stays free for the change."""


class RecordingClient(NodeClient):
    """A node client that hands every transaction to ``on_submit`` before submitting it."""

    on_submit: Callable[[Transaction], None] | None = None

    async def submit(self, tx: Transaction) -> bool:
        if self.on_submit is not None:
            self.on_submit(tx)
        return await super().submit(tx)


def _check_distinct(rows: Sequence[PaymentRow]) -> None:
    """Refuse rows paying one recipient twice: one output per address would merge them."""
    first: dict[str, int] = {}
    problems = []
    for number, row in enumerate(rows, start=1):
        if row.recipient in first:
            what = f" ({row.device})" if row.device else ""
            problems.append(
                f"rows {first[row.recipient]} and {number} both pay {row.recipient}{what}"
            )
        else:
            first[row.recipient] = number
    if problems:
        raise UsageError(
            "; ".join(problems) + ": one payment per recipient in a batch (two fleet devices "
            "on one address?); nothing was sent"
        )


@dataclass
class Outcome:
    """One batch after :meth:`Wallet.pay_rows`: paid now, or found paid already."""

    batch: Batch
    reused: bool
    status: Status | None = None


@dataclass
class Wallet:
    directory: Path
    node_url: str
    password: Callable[[], str] = field(repr=False)
    clock: Callable[[], float] = time.time
    timeout: float = 30.0
    _seed: bytes | None = field(default=None, repr=False)
    """Never in ``repr``: a logged or printed wallet must not show the seed."""
    _state: WalletState | None = None
    _client: RecordingClient | None = None
    _payers: dict[int, Payer] = field(default_factory=dict)
    _solver: Solver = field(default_factory=Solver)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def keystore_path(self) -> Path:
        return self.directory / KEYSTORE_FILE

    @property
    def state(self) -> WalletState:
        if self._state is None:
            doc = read_keystore(self.keystore_path)  # a clear error when there is no wallet
            self._state = WalletState(self.directory / STATE_FILE)
            if not self._state.addresses() and isinstance(doc.get("primary"), str):
                self._state.add_address(0, doc["primary"], "primary")  # state file lost
        return self._state

    @property
    def client(self) -> RecordingClient:
        if self._client is None:
            self._client = RecordingClient(self.node_url, timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        self._solver.close()
        if self._state is not None:
            self._state.close()
            self._state = None

    def seed(self) -> bytes:
        if self._seed is None:
            self._seed = load_seed(self.keystore_path, self.password())
        return self._seed

    def keypair(self, index: int) -> Keypair:
        return derive_keypair(self.seed(), index)

    def payer(self, index: int) -> Payer:
        if index not in self._payers:
            self._payers[index] = Payer(
                self.client, self.keypair(index), solver=self._solver, clock=self.clock
            )
        return self._payers[index]

    def primary(self) -> AddressRow:
        rows = self.state.addresses()
        if not rows:
            raise UsageError(f"the wallet in {self.directory} has no addresses")
        return rows[0]

    # -- addresses and balances -------------------------------------------------------------

    def new_address(self, label: str = "") -> AddressRow:
        rows = self.state.addresses()
        index = rows[-1].index + 1 if rows else 0
        address = encode_address(self.keypair(index).address)
        return self.state.add_address(index, address, label)

    async def balances(self) -> list[tuple[AddressRow, AddressView]]:
        rows = self.state.addresses()
        infos = await asyncio.gather(
            *(self.client.address(decode_address(r.address)) for r in rows)
        )
        return list(zip(rows, infos, strict=True))

    # -- paying -----------------------------------------------------------------------------

    async def choose_source(self, needed: int) -> int:
        """The first address (primary first) whose spendable coins cover ``needed``."""
        available = []
        for row in self.state.addresses():
            have = await self.payer(row.index).available()
            if have >= needed:
                return row.index
            available.append(have)
        total = sum(available)
        if total >= needed:
            raise SplitFunds(max(available), total, needed)
        raise InsufficientFunds(total, needed)

    def _recording(self, batch_id: int, kind: str) -> None:
        state = self.state

        def record(tx: Transaction) -> None:
            state.record_tx(batch_id, tx.id.hex(), tx.encode().hex(), kind)

        self.client.on_submit = record

    async def pay_rows(
        self, kind: str, rows: Sequence[PaymentRow], *, source: int | None = None
    ) -> list[Outcome]:
        """Pay ``rows`` (≤ 126 per transaction, one source address); rows whose key is
        recorded already are not paid again: their batch is checked and resent if needed.

        Raises:
            UsageError: a key already names a different payment; two rows pay one
                recipient (a transaction has one output per address).
            InsufficientFunds: nothing was issued.
        """
        _check_distinct(rows)
        fresh: list[PaymentRow] = []
        old_batches: dict[int, None] = {}
        for row in rows:
            found = self.state.payment_by_key(row.key) if row.key else None
            if found is None:
                fresh.append(row)
                continue
            before, batch_id = found
            if (before.recipient, before.amount) != (row.recipient, row.amount):
                raise UsageError(
                    f"idempotency key {row.key!r} already names a payment of {before.amount} "
                    f"to {before.recipient}; use a new key for a different payment"
                )
            if self.state.batch(batch_id).raw is None:
                # an earlier run stopped before building anything: nothing can be on the
                # tangle, so the row is paid as if new
                self.state.drop_batch(batch_id)
                fresh.append(row)
                continue
            old_batches[batch_id] = None
        outcomes = [await self.resume(batch_id) for batch_id in old_batches]
        if not fresh:
            return outcomes
        needed = sum(r.amount for r in fresh)
        if source is None:
            source = await self.choose_source(needed)
        else:
            have = await self.payer(source).available()
            if have < needed:
                raise InsufficientFunds(have, needed)
        payer = self.payer(source)
        for start in range(0, len(fresh), CHUNK):
            chunk = fresh[start : start + CHUNK]
            batch_id = self.state.begin_batch(kind, source, chunk, self.clock())
            payments = {decode_address(r.recipient): r.amount for r in chunk}
            outcomes.append(await self._run_batch(batch_id, functools.partial(payer.pay, payments)))
        return outcomes

    async def _run_batch(self, batch_id: int, spend: Callable[[], Awaitable[object]]) -> Outcome:
        """Issue one recorded batch; on failure its record says what became of it."""
        self._recording(batch_id, "issued")
        try:
            await spend()
        except BaseException as exc:
            self._after_failure(batch_id, exc)
            raise
        finally:
            self.client.on_submit = None
        return Outcome(self.state.batch(batch_id), reused=False, status=Status.PENDING)

    def _after_failure(self, batch_id: int, exc: BaseException) -> None:
        batch = self.state.batch(batch_id)
        if batch.raw is None:
            self.state.drop_batch(batch_id)  # nothing was built: the keys are free again
        elif isinstance(exc, NodeError | SendFailed):
            self.state.set_status(batch_id, FAILED, str(exc))  # refused: not on the tangle
        # otherwise (unreachable, interrupted) it may be on the tangle: kept as submitted

    async def resume(self, batch_id: int) -> Outcome:
        """A batch found by its key: report it, or resend the very same spend if the node
        does not have it (same inputs, so it can never be paid twice)."""
        batch = self.state.batch(batch_id)
        if batch.raw is None:
            raise SendFailed(f"payment batch {batch_id} has no transaction ({batch.status})")
        if batch.status == Status.CONFIRMED:
            # final: a node prunes confirmed history (then it knows neither the id nor
            # its status), and resending the spend could only be refused
            return Outcome(batch, reused=True, status=Status.CONFIRMED)
        statuses = await self.client.statuses([TxId(bytes.fromhex(t)) for t in batch.tx_ids])
        found = {k.hex(): v for k, v in statuses.items()}
        for wanted in (Status.CONFIRMED, Status.PENDING):
            for tx_id in batch.tx_ids:
                if found.get(tx_id) == wanted:
                    if batch.tx_id != tx_id:
                        self.state.set_current(batch_id, tx_id)
                    self.state.set_status(batch_id, wanted)
                    return Outcome(self.state.batch(batch_id), reused=True, status=wanted)
        if batch.tx_id is not None and found.get(batch.tx_id) == Status.CONFLICTING:
            self.state.set_status(batch_id, Status.CONFLICTING)
            raise SendFailed(
                f"transaction {batch.tx_id} lost a double spend: nothing was paid; "
                "use a new idempotency key to pay again"
            )
        tx = decode(bytes.fromhex(batch.raw))
        payer = self.payer(batch.source_idx)
        self._recording(batch_id, "reattach")
        try:
            if found.get(tx.id.hex()) is None:
                try:
                    await self.client.submit(tx)
                except NodeError:
                    await payer.reattach(tx)
            else:  # orphaned
                await payer.reattach(tx)
        finally:
            self.client.on_submit = None
        self.state.set_status(batch_id, Status.PENDING)
        return Outcome(self.state.batch(batch_id), reused=True, status=Status.PENDING)

    async def wait(
        self,
        batch_id: int,
        limit: float,
        progress: Callable[[str, dict[str, Any]], None] = lambda _s, _m: None,
        poll: float = 0.5,
    ) -> str:
        """Until the batch's transaction confirms: promote when advised, reattach when
        advised or orphaned, every new id recorded under the same batch (and key)."""
        deadline = time.monotonic() + limit
        while True:
            batch = self.state.batch(batch_id)
            assert batch.tx_id is not None
            assert batch.raw is not None
            if batch.status == Status.CONFIRMED:  # recorded: the node may have pruned it since
                return Status.CONFIRMED
            body = await self.client.transaction(TxId(bytes.fromhex(batch.tx_id)))
            meta = schema.metadata_from_json(body["metadata"])
            status = meta.status
            progress(batch.tx_id, body["metadata"])
            if status == Status.CONFIRMED:
                self.state.set_status(batch_id, Status.CONFIRMED)
                return status
            if status == Status.CONFLICTING:
                others = await self.client.statuses(
                    [TxId(bytes.fromhex(t)) for t in batch.tx_ids if t != batch.tx_id]
                )
                if Status.CONFIRMED in others.values():
                    winner = next(t for t, s in others.items() if s == Status.CONFIRMED)
                    self.state.set_current(batch_id, winner.hex())
                    continue
                self.state.set_status(batch_id, Status.CONFLICTING, str(meta.conflict_reason))
                raise SendFailed(f"transaction {batch.tx_id} lost a double spend: not paid")
            if time.monotonic() >= deadline:
                self.state.set_status(batch_id, status)
                raise NotConfirmed(batch.tx_id, status, limit)
            payer = self.payer(batch.source_idx)
            if status == Status.ORPHANED or meta.should_reattach:
                self._recording(batch_id, "reattach")
                try:
                    await payer.reattach(decode(bytes.fromhex(batch.raw)))
                except DoubleSpend:
                    pass  # the node counts the original's spend still: wait for it instead
                else:
                    continue
                finally:
                    self.client.on_submit = None
            if meta.should_promote:
                self._recording(batch_id, "promote")
                try:
                    await payer.promote(TxId(bytes.fromhex(batch.tx_id)))
                finally:
                    self.client.on_submit = None
            await asyncio.sleep(poll)

    async def refresh(self, batches: Sequence[Batch]) -> list[Batch]:
        """The batches with their status as the node sees it now."""
        final = (FAILED, Status.CONFIRMED)  # a confirmed status is never downgraded (pruning)
        ids = [TxId(bytes.fromhex(b.tx_id)) for b in batches if b.tx_id and b.status not in final]
        statuses = await self.client.statuses(ids) if ids else {}
        for batch in batches:
            if batch.tx_id and batch.status not in final:
                status = statuses.get(TxId(bytes.fromhex(batch.tx_id)))
                if status is not None and status != batch.status:
                    self.state.set_status(batch.id, status)
        return [self.state.batch(b.id) for b in batches]

    # -- consolidation ----------------------------------------------------------------------

    async def consolidate(self) -> list[Outcome]:
        """Sweep each address's coins into one output at the primary address: one
        transaction per source address (≤ 127 coins each; run again for more)."""
        primary = self.primary()
        outcomes = []
        for row in self.state.addresses():
            payer = self.payer(row.index)
            coins = (await payer.coins())[:MAX_INPUTS]
            if not coins or (row.index == primary.index and len(coins) < 2):
                continue
            total = sum(a for _, a in coins)
            batch_id = self.state.begin_batch(
                "consolidate", row.index, [PaymentRow(None, primary.address, total)], self.clock()
            )
            inputs, sweep = [o for o, _ in coins], {decode_address(primary.address): total}
            outcomes.append(
                await self._run_batch(batch_id, functools.partial(payer.issue, inputs, sweep))
            )
        return outcomes

    # -- fleet ------------------------------------------------------------------------------

    async def device_balances(self) -> dict[str, AddressView]:
        devices = self.state.devices()
        infos = await asyncio.gather(
            *(self.client.address(decode_address(d.address)) for d in devices)
        )
        return {d.name: info for d, info in zip(devices, infos, strict=True)}

    async def autotopup_pass(self, log: Callable[[str], None]) -> list[TopupPlan]:
        """One look at the fleet: every device below its minimum is topped up to its
        target within its daily cap, all in one transaction (or one per 126)."""
        policies = self.state.policies()
        if not policies:
            return []
        balances = {name: info.pending for name, info in (await self.device_balances()).items()}
        now = self.clock()
        paid = {p.name: self.state.topped_up_today(p.name, now) for p in policies}
        plans = plan_topups(policies, balances, paid)
        due = [p for p in plans if p.amount > 0]
        for plan in plans:
            if plan.amount == 0:
                log(
                    f"{plan.device}: balance {plan.balance} is below its minimum, but today's "
                    "cap is used up; no top-up until 00:00 UTC"
                )
        if not due:
            return plans
        devices = {d.name: d.address for d in self.state.devices()}
        rows = [PaymentRow(None, devices[p.device], p.amount, p.device) for p in due]
        outcomes = await self.pay_rows("autotopup", rows)
        tx_id = outcomes[-1].batch.tx_id if outcomes else None
        for plan in due:
            left = "" if plan.cap_left is None else f", {plan.cap_left - plan.amount} left today"
            log(
                f"topped up {plan.device}: balance {plan.balance}, paid {plan.amount}{left}"
                f" (tx {tx_id})"
            )
        return plans

    def device_addresses(self) -> list[Address]:
        return [decode_address(d.address) for d in self.state.devices()]
