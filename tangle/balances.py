"""What an address holds, as a node reports it (layer 3, pure; PROTOCOL §8.2, §9).

An output counts as its creator's status says (§9): a snapshot's outputs, and outputs
of history a snapshot replaced, are confirmed. It is spent when a confirmed, or (for
the pending balance) a pending, transaction spends it: a conflicting or orphaned
spender spends nothing. :class:`AddressIndex` remembers which outputs each address
received, so that a query does not scan the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable

from tangle.address import Address
from tangle.engine import Engine
from tangle.ledger import Ledger
from tangle.snapshot import Snapshot
from tangle.tangle import TxStatus
from tangle.transaction import Output, OutputId, Transaction, TxId


class AddressIndex:
    """The outputs each address received: from the snapshot, then from each attached
    transaction (the node feeds it as it attaches)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._by_address: dict[Address, list[OutputId]] = {}
        for oid, output in snapshot.outputs:
            self._by_address.setdefault(output.address, []).append(oid)

    def add(self, tx: Transaction, ledger: Ledger) -> None:
        for index, output in enumerate(tx.outputs):
            oid = OutputId(tx.id, index)
            if not ledger.in_base(oid):  # a snapshot's output is indexed already
                self._by_address.setdefault(output.address, []).append(oid)

    def outputs_of(self, address: Address, ledger: Ledger) -> list[tuple[OutputId, Output]]:
        """The outputs ``address`` received that the ledger still holds."""
        found = []
        for oid in self._by_address.get(address, []):
            output = ledger.output(oid)
            if output is not None:
                found.append((oid, output))
        return found


def output_status(engine: Engine, output_id: OutputId) -> TxStatus:
    """The status of the output's creator; a snapshot's outputs are confirmed."""
    if engine.tangle.ledger.in_base(output_id) or output_id.tx_id not in engine.tangle:
        return TxStatus.CONFIRMED  # the genesis's, or history the snapshot replaced
    return engine.status(output_id.tx_id)


def spender(engine: Engine, output_id: OutputId, *, confirmed_only: bool) -> TxId | None:
    """A spender of ``output_id`` that counts: confirmed, or also pending."""
    for tx_id in engine.tangle.ledger.spenders(output_id):
        status = engine.status(tx_id)
        if status is TxStatus.CONFIRMED or (not confirmed_only and status is TxStatus.PENDING):
            return tx_id
    return None


def balances(engine: Engine, outputs: Iterable[tuple[OutputId, Output]]) -> tuple[int, int]:
    """(confirmed, pending) of ``outputs``: pending counts unconfirmed, unconflicted
    payments in and out too."""
    confirmed = pending = 0
    for oid, output in outputs:
        status = output_status(engine, oid)
        if status is TxStatus.CONFIRMED and spender(engine, oid, confirmed_only=True) is None:
            confirmed += output.amount
        if status.live and spender(engine, oid, confirmed_only=False) is None:
            pending += output.amount
    return confirmed, pending
