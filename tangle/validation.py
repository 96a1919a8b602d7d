"""Stateless validity: the rules a transaction meets on its own (layer 3, pure; §5).

These need no DAG and no ledger, so a node runs them before anything else, cheapest
first: network, parents, value shape, proof of work, and last the signature (one
Ed25519 verification costs as much as some forty thousand hashes).
"""

from __future__ import annotations

from dataclasses import dataclass

import pow
from tangle.constants import MAX_SUPPLY, NULL_HASH
from tangle.errors import InsufficientWork, InvalidTransaction, ValueRuleViolation, WrongNetwork
from tangle.signing import verify_signature
from tangle.transaction import Transaction

DEFAULT_BASE_DIFFICULTY = pow.DEFAULT_BASE_DIFFICULTY
"""§6.3: leading zero bits for a transaction of up to 512 bytes on the main network."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkParams:
    """What every node of one network agrees on, besides the genesis."""

    network_id: int
    """u64 carried by every transaction of the network (§5.2)."""
    base_difficulty: int = DEFAULT_BASE_DIFFICULTY
    """Proof-of-work bits for a transaction of up to 512 bytes (§6.2)."""

    def __post_init__(self) -> None:
        if not 0 <= self.network_id < 2**64:
            raise ValueError(f"network_id: expected a u64, got {self.network_id}")
        if not 0 <= self.base_difficulty <= pow.difficulty.MAX_DIFFICULTY:
            raise ValueError(f"base_difficulty: expected 0..256, got {self.base_difficulty}")

    def required_difficulty(self, tx: Transaction) -> int:
        """§6.2: the work ``tx`` must prove on this network."""
        return pow.required_difficulty(self.base_difficulty, tx.size)


def check_network(tx: Transaction, params: NetworkParams) -> None:
    """§5.2: the transaction belongs to this network."""
    if tx.network_id != params.network_id:
        raise WrongNetwork(params.network_id, tx.network_id)


def check_parents(tx: Transaction) -> None:
    """§5.3: neither parent is the null hash (only the genesis has null parents)."""
    for name, parent in (("trunk", tx.trunk), ("branch", tx.branch)):
        if parent == NULL_HASH:
            raise InvalidTransaction(
                f"{name}: expected the id of an earlier transaction, got the null hash "
                "(only the genesis has null parents) (§5.3)"
            )


def check_value_shape(tx: Transaction) -> None:
    """§5.4, §5.5: value is moved, never created or destroyed by the shape alone."""
    if tx.inputs and not tx.outputs:
        raise ValueRuleViolation(
            "§5.4", f"{len(tx.inputs)} inputs but no outputs: value would be destroyed"
        )
    if tx.outputs and not tx.inputs:
        raise ValueRuleViolation(
            "§5.4", f"{len(tx.outputs)} outputs but no inputs: value would be created"
        )
    total = sum(o.amount for o in tx.outputs)
    if total > MAX_SUPPLY:
        raise ValueRuleViolation(
            "§5.5", f"outputs add up to {total}, more than the maximum supply {MAX_SUPPLY}"
        )


def check_work(tx: Transaction, params: NetworkParams) -> int:
    """§5.7: the nonce proves the required work; returns the work it proves (bits)."""
    required = params.required_difficulty(tx)
    done = pow.work(tx.pow_data(), tx.nonce)
    if done < required:
        raise InsufficientWork(required, done)
    return done


def check_signature(tx: Transaction) -> None:
    """§5.6: the issuer signed the essence hash."""
    verify_signature(tx.issuer, tx.essence_hash(), tx.signature)


def validate_stateless(tx: Transaction, params: NetworkParams) -> int:
    """Every rule of §5, cheapest first; returns the work the nonce proves (bits), which
    a node's admission compares with what it asks of this issuer (§6.5).

    Raises:
        InvalidTransaction: the first rule broken (a subclass names which).
    """
    check_network(tx, params)
    check_parents(tx)
    check_value_shape(tx)
    work = check_work(tx, params)
    check_signature(tx)
    return work
