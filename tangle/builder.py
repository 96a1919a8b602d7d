"""Building transactions: canonical order, signature, proof of work (layer 3, pure).

Shared by the demo, the tests and the wallet. Time is a parameter (``timestamp``),
and so is every choice: which outputs to spend is the caller's decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import pow
from tangle.address import Address
from tangle.signing import Keypair
from tangle.transaction import Output, OutputId, Transaction, TxId
from tangle.validation import NetworkParams


def outputs_from(payments: Mapping[Address, int]) -> tuple[Output, ...]:
    """One output per address, in the canonical (ascending address) order."""
    return tuple(Output(address, amount) for address, amount in sorted(payments.items()))


def select_inputs(coins: Iterable[tuple[OutputId, int]], amount: int) -> tuple[list[OutputId], int]:
    """Largest coins first until ``amount`` is covered: (chosen, their total).

    The total falls short of ``amount`` when the coins do; the caller decides what that
    means (an error for a payment, a smaller batch for a sweep).
    """
    chosen: list[OutputId] = []
    total = 0
    for output_id, value in sorted(coins, key=lambda coin: (-coin[1], coin[0])):
        if total >= amount:
            break
        chosen.append(output_id)
        total += value
    return chosen, total


def payments_with_change(
    payee: Address, amount: int, payer: Address, total: int
) -> dict[Address, int]:
    """Pay ``amount`` to ``payee`` from inputs worth ``total``; the rest returns to ``payer``.

    One output per address (§4.3), so paying oneself merges into a single output.

    Raises:
        ValueError: the inputs do not cover the amount.
    """
    if total < amount:
        raise ValueError(f"inputs: expected at least {amount}, got {total}")
    payments = {payee: amount}
    if total > amount:
        payments[payer] = payments.get(payer, 0) + total - amount
    return payments


def build(
    keypair: Keypair,
    params: NetworkParams,
    *,
    trunk: TxId,
    branch: TxId,
    timestamp: int,
    inputs: Iterable[OutputId] = (),
    payments: Mapping[Address, int] | None = None,
    payload: bytes = b"",
) -> Transaction:
    """A signed transaction with a valid nonce, ready to attach.

    ``payments`` maps each recipient (change included) to an amount; the caller makes
    sure it adds up to the inputs (the ledger rejects it otherwise, §8.3 R5).
    """
    unsigned = Transaction(
        network_id=params.network_id,
        timestamp=timestamp,
        trunk=trunk,
        branch=branch,
        issuer=keypair.public_key,
        inputs=tuple(sorted(set(inputs))),
        outputs=outputs_from(payments or {}),
        payload=payload,
    )
    return solve(sign(unsigned, keypair), params)


def sign(tx: Transaction, keypair: Keypair) -> Transaction:
    """``tx`` signed by ``keypair`` (§5.6); the keypair must be the issuer's."""
    if keypair.public_key != tx.issuer:
        raise ValueError(
            f"issuer: the transaction names {tx.issuer.hex()}, "
            f"the keypair is {keypair.public_key.hex()}"
        )
    return dataclasses.replace(tx, signature=keypair.sign(tx.essence_hash()), nonce=0)


def solve(tx: Transaction, params: NetworkParams) -> Transaction:
    """``tx`` with the smallest nonce that meets the network's difficulty (§6), found on
    this core. Senders with more cores use ``pow.pool.PoolSearcher``: same nonce."""
    nonce = pow.solve(tx.pow_data(), params.required_difficulty(tx))
    return dataclasses.replace(tx, nonce=nonce)
