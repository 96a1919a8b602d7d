"""Paying from one address: coin selection, change, proof of work, submit, retries.

:class:`Payer` is what a wallet, a meter or an x402 client embeds. It remembers the
outputs it has just spent and the change it has just made, so back-to-back payments
never pick the same coin twice and never wait for the node to catch up. Every spend
approves the transactions that created its inputs (``GET /tips?approve=``), as §8.3 R2
requires; a pending coin is spent at once, no confirmation wait.

Proof of work runs on a thread for a normal payment (a base-16 payment takes ~10 ms on
one core) and on every core (:class:`pow.pool.PoolSearcher`) when a node asks for more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pow
from pow.pool import PoolSearcher, Stop
from tangle.address import Address, encode_address
from tangle.builder import outputs_from, select_inputs, sign
from tangle.constants import MAX_INPUTS, MAX_OUTPUTS, MAX_PAYLOAD_SIZE
from tangle.ledger import ConflictReason
from tangle.schema import ErrorCode
from tangle.signing import Keypair
from tangle.transaction import OutputId, Transaction, TxId
from wallet.client import NodeClient
from wallet.errors import DoubleSpend, InsufficientFunds, NodeError, SendFailed, UsageError

POOL_FROM_DIFFICULTY = 19
"""Below this many bits one core answers within ~100 ms; from here on, all cores."""

RETRIES = 4
"""Submissions per payment: fresh tips after a refusal that fresh tips can mend."""

RETRYABLE = frozenset(
    {
        ErrorCode.UNKNOWN_PARENT,
        ErrorCode.CONFLICTING,
        ErrorCode.INSUFFICIENT_WORK,
        ErrorCode.NOT_LIVE,
    }
)

RESELECTS = 3
"""Fresh coin selections per payment after the node says a chosen coin is spent already."""

CONFLICT_REASON = "conflict_reason"
"""The field of an error object that names the §8.3 reason of a ``conflicting`` refusal
(as in a transaction's ``metadata``)."""
DOUBLE_SPEND_REASON = ConflictReason.DOUBLE_SPEND.name.lower()


def is_double_spend(exc: NodeError) -> bool:
    """The node refused a spend of an output another transaction it knows spends, by its
    fields: ``409 double_spend``, or ``422 conflicting`` whose ``conflict_reason`` is
    ``double_spend``. Never from the message."""
    return exc.code == ErrorCode.DOUBLE_SPEND or (
        exc.code == ErrorCode.CONFLICTING and exc.extra.get(CONFLICT_REASON) == DOUBLE_SPEND_REASON
    )


class Solver:
    """Proof of work for the wallet: a thread for small work, a process pool for big."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers
        self._pool: PoolSearcher | None = None

    async def nonce(self, tx: Transaction, difficulty: int) -> int:
        if difficulty < POOL_FROM_DIFFICULTY:
            return await asyncio.to_thread(pow.solve, tx.pow_data(), difficulty)
        if self._pool is None:
            self._pool = await asyncio.to_thread(PoolSearcher, self.workers)
        result = await self._pool.search_async(tx.pow_data(), difficulty)
        if result.stop is not Stop.FOUND or result.nonce is None:
            raise SendFailed(f"proof of work stopped: {result.stop.value}")
        return result.nonce

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def check_payments(payments: Mapping[Address, int]) -> int:
    """The total of ``payments``; a clear error for an empty or impossible one."""
    if len(payments) > MAX_OUTPUTS - 1:  # one output stays free for the change
        raise UsageError(
            f"payments: at most {MAX_OUTPUTS - 1} recipients per transaction, got {len(payments)}"
        )
    for address, amount in payments.items():
        if amount < 1:
            raise UsageError(f"amount for {encode_address(address)}: expected ≥ 1, got {amount}")
    return sum(payments.values())


@dataclass
class Payer:
    """One address that pays, through one node."""

    client: NodeClient
    keypair: Keypair
    solver: Solver = field(default_factory=Solver)
    clock: Callable[[], float] = time.time
    spent: set[OutputId] = field(default_factory=set)
    """Outputs this payer spent; kept out of selection until the node shows them spent."""
    made: dict[OutputId, int] = field(default_factory=dict)
    """Change this payer made, usable before the node's address index shows it."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    """Held from coin selection to the answer to the submission: concurrent payments of
    one payer never pick the same coin."""

    @property
    def address(self) -> Address:
        return self.keypair.address

    async def coins(self) -> list[tuple[OutputId, int]]:
        """Spendable outputs of this address: live, unspent, not spent by us already."""
        info = await self.client.address(self.address)
        coins: dict[OutputId, int] = {}
        for out in info.outputs:
            if out.spendable and out.output_id not in self.spent:
                coins[out.output_id] = out.amount
            if out.spent:
                self.made.pop(out.output_id, None)
        for oid, amount in self.made.items():
            if oid not in self.spent:
                coins.setdefault(oid, amount)
        return sorted(coins.items())

    async def available(self) -> int:
        return sum(amount for _, amount in await self.coins())

    async def pay(
        self,
        payments: Mapping[Address, int],
        *,
        payload: bytes = b"",
        approve: tuple[TxId, ...] = (),
    ) -> Transaction:
        """Pay every ``address: amount`` in one transaction, change back to this address.

        ``approve``: transactions the payment must see besides its inputs' (a meter
        reading it pays for).

        Raises:
            InsufficientFunds: nothing was issued.
            UsageError: an amount below 1, too many recipients, a payload too large.
            SendFailed, NodeError, NodeUnreachable: the node would not take it.
        """
        needed = check_payments(payments)
        async with self._lock:
            for _attempt in range(RESELECTS + 1):
                coins = await self.coins()
                chosen, total = select_inputs(coins, needed)
                if total < needed:
                    raise InsufficientFunds(
                        total, needed, f"address {encode_address(self.address)}"
                    )
                if len(chosen) > MAX_INPUTS:
                    raise UsageError(
                        f"the payment needs {len(chosen)} coins, a transaction spends at most "
                        f"{MAX_INPUTS}; run consolidate first"
                    )
                outputs = dict(payments)
                if total > needed:
                    outputs[self.address] = outputs.get(self.address, 0) + total - needed
                try:
                    return await self._issue(chosen, outputs, payload, approve)
                except DoubleSpend as exc:
                    self._forget(exc.inputs)  # spent by someone else: choose again
                    last = exc
        raise SendFailed(
            f"the node said the chosen coins were spent already {RESELECTS + 1} times; "
            f"nothing was sent; last: {last.cause}"
        )

    def _forget(self, inputs: list[OutputId]) -> None:
        """Keep ``inputs`` out of selection: the node says they are spent."""
        self.spent.update(inputs)
        for oid in inputs:
            self.made.pop(oid, None)

    async def issue(
        self,
        inputs: list[OutputId],
        outputs: Mapping[Address, int],
        payload: bytes = b"",
        *,
        approve: tuple[TxId, ...] = (),
    ) -> Transaction:
        """Build, work, submit with retries; record what was spent and what came back.

        Raises:
            DoubleSpend: the node says an input is spent already (nothing was issued).
        """
        async with self._lock:
            return await self._issue(inputs, outputs, payload, approve)

    async def _issue(
        self,
        inputs: list[OutputId],
        outputs: Mapping[Address, int],
        payload: bytes,
        approve: tuple[TxId, ...],
    ) -> Transaction:
        if len(payload) > MAX_PAYLOAD_SIZE:
            raise UsageError(f"payload: at most {MAX_PAYLOAD_SIZE} bytes, got {len(payload)}")
        params = await self.client.params()
        wanted = tuple(dict.fromkeys((*approve, *(oid.tx_id for oid in inputs))))
        extra_bits = 0
        last: NodeError | None = None
        for _attempt in range(RETRIES):
            trunk, branch = await self.client.tips(wanted)
            unsigned = Transaction(
                network_id=params.network_id,
                timestamp=int(self.clock() * 1000),
                trunk=trunk,
                branch=branch,
                issuer=self.keypair.public_key,
                inputs=tuple(sorted(set(inputs))),
                outputs=outputs_from(outputs),
                payload=payload,
            )
            signed = sign(unsigned, self.keypair)
            difficulty = max(params.required_difficulty(signed), extra_bits)
            tx = dataclasses.replace(signed, nonce=await self.solver.nonce(signed, difficulty))
            try:
                await self.client.submit(tx)
            except NodeError as exc:
                if is_double_spend(exc):
                    raise DoubleSpend(list(inputs), exc) from None
                if exc.code not in RETRYABLE:
                    raise
                last = exc
                if exc.code == ErrorCode.INSUFFICIENT_WORK:
                    extra_bits = int(exc.extra.get("required_difficulty", difficulty + 1))
                continue
            self.spent.update(inputs)
            for oid in inputs:
                self.made.pop(oid, None)
            for index, out in enumerate(tx.outputs):
                if out.address == self.address:
                    self.made[OutputId(tx.id, index)] = out.amount
            return tx
        raise SendFailed(f"the node refused the payment {RETRIES} times; last: {last}")

    async def reattach(self, tx: Transaction) -> Transaction:
        """The same spend again on fresh tips (a new id): for a payment orphaned or left
        behind. Its inputs must still be unspent by anything confirmed."""
        async with self._lock:
            self.spent.difference_update(tx.inputs)
            payments = {o.address: o.amount for o in tx.outputs}
            try:
                return await self._issue(list(tx.inputs), payments, tx.payload, ())
            except DoubleSpend:
                self.spent.update(tx.inputs)  # still spent: by the original, or a rival
                raise

    async def promote(self, tx_id: TxId) -> Transaction:
        """An empty transaction approving ``tx_id``: weight for a payment left waiting."""
        return await self.issue([], {}, approve=(tx_id,))
