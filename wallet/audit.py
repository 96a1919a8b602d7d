"""Reading transactions back from a node without trusting its JSON (wallet layer).

:func:`fetch_transaction` rebuilds the :class:`~tangle.transaction.Transaction` from the
node's decoded fields and checks that it hashes to the id asked for and that the
issuer's signature verifies (§5.6): a seller auditing a payment relies on the node only
for *whether* the transaction is in the tangle and its status, never for its content.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from tangle.address import Address, decode_address
from tangle.errors import TangleError
from tangle.transaction import Output, OutputId, Transaction, TxId
from tangle.validation import check_signature
from wallet.client import NodeClient
from wallet.errors import NodeError, WalletError

ANCESTRY_LIMIT = 64
"""Transactions :func:`approves` fetches at most while looking for an ancestor."""


class AuditError(WalletError):
    """A transaction read back from the node is not what it claims to be."""

    exit_code = 7


@dataclass(frozen=True, slots=True)
class Fetched:
    tx: Transaction
    status: str
    """pending, confirmed, conflicting or orphaned, as the node sees it now."""


def transaction_from_json(body: dict[str, Any]) -> Transaction:
    """The transaction the node's JSON describes; raises AuditError if it is not well formed."""
    try:
        outputs = tuple(
            sorted(
                (Output(decode_address(o["address"]), int(o["amount"])) for o in body["outputs"]),
                key=lambda o: o.address,
            )
        )
        return Transaction(
            version=int(body["version"]),
            network_id=int(body["network_id"], 16),
            timestamp=int(body["timestamp"]),
            trunk=TxId(bytes.fromhex(body["trunk"])),
            branch=TxId(bytes.fromhex(body["branch"])),
            issuer=bytes.fromhex(body["issuer"]),
            inputs=tuple(OutputId.from_hex(i) for i in body["inputs"]),
            outputs=outputs,
            payload=bytes.fromhex(body["payload"]),
            signature=bytes.fromhex(body["signature"]),
            nonce=int(body["nonce"]),
        )
    except (KeyError, TypeError, ValueError, TangleError) as exc:
        raise AuditError(f"the node's transaction JSON is malformed: {exc}") from None


async def fetch_transaction(client: NodeClient, tx_id: TxId) -> Fetched:
    """The transaction ``tx_id`` with its status, checked against its id and signature.

    Raises:
        AuditError: unknown to the node, or the node's copy does not hash to ``tx_id``
            or is not signed by its issuer.
    """
    try:
        body = await client.transaction(tx_id)
    except NodeError as exc:
        if exc.status == 404:
            raise AuditError(f"transaction {tx_id.hex()} is unknown to the node") from None
        raise
    tx = transaction_from_json(body)
    if tx.id != tx_id:
        raise AuditError(f"the node's copy of {tx_id.hex()} hashes to {tx.id.hex()}")
    try:
        check_signature(tx)
    except TangleError as exc:
        raise AuditError(f"transaction {tx_id.hex()}: {exc}") from None
    return Fetched(tx=tx, status=str(body["metadata"]["status"]))


def paid_to(tx: Transaction, address: Address) -> int:
    """What ``tx`` pays to ``address`` (0 when nothing)."""
    return sum(o.amount for o in tx.outputs if o.address == address)


async def approves(client: NodeClient, tx: Transaction, ancestor: TxId) -> bool:
    """True when ``ancestor`` is in the past cone of ``tx``, looked for breadth first
    through at most :data:`ANCESTRY_LIMIT` fetched transactions (a direct parent costs
    no fetch)."""
    queue: deque[TxId] = deque(dict.fromkeys(tx.parents))
    seen: set[TxId] = set(queue)
    fetched = 0
    while queue:
        current = queue.popleft()
        if current == ancestor:
            return True
        if fetched >= ANCESTRY_LIMIT:
            return False
        try:
            body = await client.transaction(current)
        except NodeError:
            continue
        fetched += 1
        for key in ("trunk", "branch"):
            parent = TxId(bytes.fromhex(body[key]))
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return False
