"""Admission: what a node asks of a fresh transaction beyond validity (layer 3, pure).

A transaction that a device submits to a node's API passed the stateless rules (§5)
already; before attaching it, the node asks four more things, in this order, cheapest
first (docs/NODE.md, "Ingest pipeline"):

1. **known parents**: both parents are attached here (tips come from ``GET /tips``);
2. **adaptive work** (§6.5): the nonce proves at least what this node asks of this
   issuer now, which rises for an issuer that sent fast recently;
3. **not born conflicting** (§8.3): its past cone is consistent, so its verdict is;
4. **no live rival** (§8.4): no pending or confirmed transaction spends an output it
   spends (a second spend would only ever lose or make both lose).

These are admission rules, not validity rules: a transaction already in the network
is accepted from gossip on validity alone (§6.5, §8.3), so that its approvers can
become solid. :func:`admit` returns the refusal, or the verdict the transaction
attaches with, so that the node judges its past cone exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from tangle.errors import InsufficientWork
from tangle.ledger import Verdict
from tangle.tangle import Tangle, TxStatus
from tangle.transaction import Transaction, TxId


class RefusalReason(Enum):
    """Which admission rule a transaction breaks."""

    UNKNOWN_PARENT = "unknown_parent"
    INSUFFICIENT_WORK = "insufficient_work"
    CONFLICTING = "conflicting"
    DOUBLE_SPEND = "double_spend"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A precise refusal: the rule, what was wrong (expected against actual), details."""

    reason: RefusalReason
    message: str
    details: Mapping[str, str | int] = field(default_factory=dict)
    """Machine-readable: ``parent``; ``required_difficulty``/``actual_difficulty``;
    ``conflict_reason`` (as in a transaction's metadata); ``output_id``/``spent_by``."""


def admit(
    tx: Transaction,
    tangle: Tangle,
    status: Callable[[TxId], TxStatus],
    *,
    work: int,
    required: int,
) -> Refusal | Verdict:
    """Judge ``tx`` (stateless-valid, proving ``work`` bits) against the four rules.

    ``status`` is the node's status of an attached transaction (§9); ``required`` the
    work this node asks of ``tx``'s issuer now (§6.5). Returns the first rule broken,
    or the (consistent) verdict to attach ``tx`` with.
    """
    missing = tangle.missing_parents_of(tx)
    if missing:
        return Refusal(
            RefusalReason.UNKNOWN_PARENT,
            f"parent {missing[0].hex()} is unknown to this node",
            {"parent": missing[0].hex()},
        )
    if work < required:
        return Refusal(
            RefusalReason.INSUFFICIENT_WORK,
            str(InsufficientWork(required, work))
            + "; this issuer sent fast recently, so this node asks more (PROTOCOL §6.5)",
            {"required_difficulty": required, "actual_difficulty": work},
        )
    verdict = tangle.preview(tx)
    if not verdict.consistent:
        return Refusal(
            RefusalReason.CONFLICTING,
            f"{verdict.reason.name}: {verdict.detail} (PROTOCOL §8.3)",
            {"conflict_reason": verdict.reason.name.lower()},
        )
    for output_id in tx.inputs:
        for spender in tangle.ledger.spenders(output_id):
            rival = status(spender)
            if spender != tx.id and rival.live:
                return Refusal(
                    RefusalReason.DOUBLE_SPEND,
                    f"inputs: output {output_id.hex()} is already spent by "
                    f"{rival.name.lower()} transaction {spender.hex()} (PROTOCOL §8.4): "
                    "this node refuses a second spend",
                    {"output_id": output_id.hex(), "spent_by": spender.hex()},
                )
    return verdict
