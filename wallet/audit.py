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

from tangle import schema
from tangle.address import Address
from tangle.errors import TangleError
from tangle.schema import ErrorCode, SchemaError, Status
from tangle.transaction import Transaction, TxId
from tangle.validation import check_signature
from wallet.client import NodeClient
from wallet.errors import AuditError, MalformedAnswer, NodeError

ANCESTRY_LIMIT = 64
"""Transactions :func:`approves` fetches at most while looking for an ancestor."""


@dataclass(frozen=True, slots=True)
class Fetched:
    tx: Transaction
    status: Status
    """pending, confirmed, conflicting or orphaned, as the node sees it now."""


def transaction_from_json(body: Any) -> Transaction:
    """The transaction the node's JSON describes (:func:`tangle.schema.transaction_from_json`,
    which checks it against the id it claims); raises AuditError if it is not well formed."""
    try:
        return schema.transaction_from_json(body)
    except SchemaError as exc:
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
        if exc.code == ErrorCode.NOT_FOUND:
            raise AuditError(f"transaction {tx_id.hex()} is unknown to the node") from None
        raise
    try:
        view = schema.transaction_view_from_json(body)
    except SchemaError as exc:
        raise AuditError(f"the node's transaction JSON is malformed: {exc}") from None
    tx = view.tx
    if tx.id != tx_id:
        raise AuditError(f"the node's copy of {tx_id.hex()} hashes to {tx.id.hex()}")
    try:
        check_signature(tx)
    except TangleError as exc:
        raise AuditError(f"transaction {tx_id.hex()}: {exc}") from None
    return Fetched(tx=tx, status=view.status)


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
            parents = transaction_from_json(await client.transaction(current)).parents
        except (NodeError, MalformedAnswer, SchemaError):
            continue  # unknown to the node, or garbled: not a path it can vouch for
        fetched += 1
        for parent in parents:
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return False
