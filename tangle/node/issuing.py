"""The node's own transactions: dev-faucet payments, liveness, tips for wallets (layer 5).

- **Faucet** (dev networks): pays from this node's faucet key, approving its previous
  payment so that its change is in view and no output is ever spent twice.
- **Liveness** (§4.2): while a recent transaction that carries value or data waits,
  the node issues an empty transaction when the tangle is idle, when tips pile up, or
  when that transaction has waited ``tip_wait`` for an approver; the empty one approves
  the oldest such tip. Empty transactions (this node's or another's) need no
  confirmation: counting them would make idle nodes approve each other's forever.
- **Tips that approve given transactions** (``GET /tips?approve=``): a wallet spending
  pending outputs must see them (§8.2).

Proof of work and signing run on a thread; the transaction then goes through the same
admission as any submission (``submit``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from tangle.address import Address
from tangle.builder import build, payments_with_change, select_inputs
from tangle.engine import Engine
from tangle.node.errors import Rejected
from tangle.schema import ErrorCode, Status
from tangle.signing import Keypair
from tangle.tangle import Tangle, TxStatus
from tangle.transaction import OutputId, Transaction, TxId
from tangle.validation import NetworkParams


class IssuerHost(Protocol):
    """What the issuer needs of its node (the node's engine changes at each prune)."""

    @property
    def engine(self) -> Engine: ...
    @property
    def params(self) -> NetworkParams: ...

    rng: random.Random
    clock: Callable[[], float]

    def submit(self, raw: bytes) -> Awaitable[object]: ...


class Issuer:
    """Builds, solves and submits the node's own transactions."""

    def __init__(self, host: IssuerHost, key: Keypair, faucet: Keypair) -> None:
        self.host = host
        self.key = key
        """The node's own key (its liveness transactions)."""
        self.faucet = faucet
        self._faucet_lock = asyncio.Lock()
        self._faucet_last: TxId | None = None
        self._last_keep_alive = float("-inf")

    @property
    def _tangle(self) -> Tangle:
        return self.host.engine.tangle

    def is_live(self, tx_id: TxId) -> bool:
        return self.host.engine.status(tx_id).live

    def forget_missing(self) -> None:
        """After a prune: the faucet's last payment may be gone from the tangle."""
        if self._faucet_last is not None and self._faucet_last not in self._tangle:
            self._faucet_last = None

    async def issue(
        self,
        key: Keypair,
        inputs: list[OutputId],
        payments: dict[Address, int],
        payload: bytes,
        *,
        promote: TxId | None = None,
    ) -> Transaction:
        """Build (proof of work on a thread) and submit a transaction of this node's.

        With ``promote``, the trunk is that transaction (when it goes with the branch the
        walk chose), so a payment waiting alone gets an approver at once.
        """
        host = self.host
        trunk, branch = host.engine.select_tips(host.rng, host.clock())
        if promote is not None and self._tangle.can_approve(promote, branch):
            trunk = promote
        return await self._build_and_submit(key, (trunk, branch), inputs, payments, payload)

    async def _build_and_submit(
        self,
        key: Keypair,
        parents: tuple[TxId, TxId],
        inputs: list[OutputId],
        payments: dict[Address, int],
        payload: bytes = b"",
        *,
        built: Callable[[Transaction], None] = lambda _: None,
    ) -> Transaction:
        """Sign and solve on a thread, then submit; returns once durable. ``built`` hears
        of the transaction before it is submitted (it may attach and then fail to commit)."""
        tx = await asyncio.to_thread(
            build,
            key,
            self.host.params,
            trunk=parents[0],
            branch=parents[1],
            timestamp=int(self.host.clock() * 1000),
            inputs=inputs,
            payments=payments,
            payload=payload,
        )
        built(tx)
        await self.host.submit(tx.encode())
        return tx

    def tips_approving(self, wanted: list[TxId]) -> tuple[TxId, TxId]:
        """Tips from the walk, swapped for ``wanted`` transactions the pair does not yet
        approve: a wallet spending pending outputs must see them (§8.2).

        Raises:
            Rejected: an id is unknown (404), is not live, or more than two are out of view
                (a consolidation first), or the pair would conflict (409).
        """
        engine, tangle = self.host.engine, self._tangle
        for tx_id in wanted:
            if tx_id not in tangle:
                raise Rejected(
                    ErrorCode.NOT_FOUND, f"approve: transaction {tx_id.hex()} is unknown", 404
                )
            if not self.is_live(tx_id):
                status = Status.of(engine.status(tx_id))
                raise Rejected(
                    ErrorCode.NOT_LIVE, f"approve: transaction {tx_id.hex()} is {status}", 409
                )
        trunk, branch = engine.select_tips(self.host.rng, self.host.clock())
        dag = tangle.dag
        unseen = [
            t
            for t in dict.fromkeys(wanted)
            if not (dag.in_past_cone(t, trunk) or dag.in_past_cone(t, branch))
        ]
        if len(unseen) > 2:
            raise Rejected(
                ErrorCode.TOO_MANY_PARENTS,
                f"approve: {len(unseen)} of the transactions are not yet in view of any tip, "
                "a transaction has two parents; consolidate, or wait for them to be approved",
                409,
            )
        if unseen:
            trunk = unseen[0]
            branch = unseen[1] if len(unseen) == 2 else branch
            if not tangle.can_approve(trunk, branch):
                if len(unseen) == 2:
                    raise Rejected(
                        ErrorCode.CONFLICTING, "approve: the two transactions conflict (§8.4)", 409
                    )
                branch = trunk
        return trunk, branch

    async def pay_from_faucet(self, address: Address, amount: int) -> TxId:
        """Dev networks: pay ``amount`` from the faucet; returns once durable."""
        if amount < 1:
            raise Rejected(ErrorCode.BAD_AMOUNT, f"amount: expected at least 1, got {amount}", 400)
        async with self._faucet_lock:
            host, tangle = self.host, self._tangle
            trunk, branch = host.engine.select_tips(host.rng, host.clock())
            # Approve the faucet's previous payment, so that its change is in view and
            # its spends are never made twice.
            last = self._faucet_last
            dag = tangle.dag
            if (
                last is not None
                and last in tangle
                and self.is_live(last)
                and not (dag.in_past_cone(last, trunk) or dag.in_past_cone(last, branch))
            ):
                trunk, branch = (last, branch) if tangle.can_approve(last, branch) else (last, last)
            view = tangle.unspent_seen_by(trunk, branch)
            chosen, total = select_inputs(
                ((oid, o.amount) for oid, o in view.items() if o.address == self.faucet.address),
                amount,
            )
            if total < amount:
                raise Rejected(
                    ErrorCode.INSUFFICIENT_FUNDS, f"the faucet has {total}, needs {amount}", 409
                )
            payments = payments_with_change(address, amount, self.faucet.address, total)

            def remember(tx: Transaction) -> None:
                # Before the submission: a payment that attaches and then fails to commit
                # (a 503) is still in the tangle, and the next one must approve it.
                self._faucet_last = tx.id

            tx = await self._build_and_submit(
                self.faucet, (trunk, branch), chosen, payments, built=remember
            )
            return tx.id

    # -- liveness ---------------------------------------------------------------------------

    def oldest_pending_tip(self, recent: list[TxId]) -> TxId | None:
        """The oldest of ``recent`` still pending, walkable, and approved by nothing
        walkable: an approver that is conflicting does not count (spam that approves a
        payment must not keep the node from approving it)."""
        w = self.host.engine.window
        walkable = w.walkable
        for tx_id in recent:
            if tx_id not in w:
                continue
            slot = w.slot(tx_id)
            if (
                walkable[slot]
                and not any(walkable[a] for a in w.approvers(slot))
                and self.needs_confirmation(tx_id)
            ):
                return tx_id
        return None

    def needs_confirmation(self, tx_id: TxId) -> bool:
        """Pending, and carries value or data (an empty transaction needs none)."""
        engine = self.host.engine
        if tx_id not in engine.tangle or engine.status(tx_id) is not TxStatus.PENDING:
            return False
        tx = engine.tangle.get(tx_id)
        return tx.moves_value or bool(tx.payload)

    async def keep_alive(self, recent: list[TxId], now: float) -> bool:
        """Issue an empty transaction when one is due (§4.2); True if it did."""
        pending = any(self.needs_confirmation(t) for t in recent)
        if not pending:
            return False
        tip = self.oldest_pending_tip(recent)
        engine = self.host.engine
        waiting = 0.0 if tip is None else now - float(engine.window.times[engine.window.slot(tip)])
        if not engine.consolidation_due(now, waiting, self._last_keep_alive):
            return False
        self._last_keep_alive = now
        await self.issue(self.key, [], {}, b"", promote=tip)
        return True
