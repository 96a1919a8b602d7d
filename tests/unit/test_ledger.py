"""The UTXO ledger and the past-cone rules R1–R6 (PROTOCOL §8)."""

from __future__ import annotations

import dataclasses

import pytest

from tangle import (
    ConflictReason,
    InconsistentCone,
    InvalidGenesis,
    Keypair,
    NetworkParams,
    OutputId,
    Tangle,
    Transaction,
    TxId,
    make_genesis,
    validate_genesis,
)
from tangle.constants import MAX_SUPPLY
from tests.helpers import NETWORK_ID, output_of, transfer


def attach(tangle: Tangle, tx: Transaction) -> Transaction:
    tangle.attach(tx)
    return tx


# -- genesis (§8.1) -----------------------------------------------------------------------


def test_genesis_allocates_the_supply(genesis: Transaction, tangle: Tangle) -> None:
    assert tangle.supply == 1_500
    assert tangle.is_consistent(genesis.id)
    assert tangle.tips() == {genesis.id}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"network_id": 1}, f"network id: expected {NETWORK_ID}, got 1"),
        ({"trunk": TxId(b"\x01" * 32)}, "null hash"),
        ({"inputs": (OutputId(TxId(b"\x01" * 32), 0),)}, "expected no inputs, got 1"),
        ({"outputs": ()}, "expected at least one output"),
        ({"issuer": b"\x01" * 32}, "all zero bytes"),
        ({"nonce": 1}, "nonce: expected 0, got 1"),
    ],
)
def test_invalid_genesis(genesis: Transaction, changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidGenesis, match=message):
        validate_genesis(dataclasses.replace(genesis, **changes), NETWORK_ID)  # type: ignore[arg-type]


def test_genesis_supply_cap(alice: Keypair, bob: Keypair) -> None:
    with pytest.raises(InvalidGenesis, match="supply: expected at most"):
        make_genesis(NETWORK_ID, {alice.address: MAX_SUPPLY, bob.address: 1})


# -- R1..R6 (§8.3) ------------------------------------------------------------------------


def pay(
    tangle: Tangle,
    key: Keypair,
    params: NetworkParams,
    parents: tuple[TxId, TxId],
    inputs: list[OutputId],
    payments: dict,
    **kw: object,  # type: ignore[type-arg]
) -> Transaction:
    return attach(tangle, transfer(key, params, parents, inputs, payments, **kw))  # type: ignore[arg-type]


def test_valid_payment_is_pending(
    tangle: Tangle, genesis: Transaction, alice: Keypair, bob: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    tx = pay(
        tangle,
        alice,
        params,
        (g, g),
        [output_of(genesis, alice.address)],
        {bob.address: 10, alice.address: 990},
    )
    assert tangle.verdict(tx.id).reason is ConflictReason.NONE
    assert tangle.is_consistent(tx.id)
    assert tangle.balance_seen_by(bob.address, tx.id) == 510
    assert tangle.balance_seen_by(alice.address, tx.id) == 990
    assert tangle.balance_seen_by(alice.address, g) == 1000  # the genesis view is unchanged


def test_one_unit_output_is_valid(
    tangle: Tangle, genesis: Transaction, alice: Keypair, carol: Keypair, params: NetworkParams
) -> None:  # §8.6: no dust rule
    g = genesis.id
    tx = pay(
        tangle,
        alice,
        params,
        (g, g),
        [output_of(genesis, alice.address)],
        {carol.address: 1, alice.address: 999},
    )
    assert tangle.is_consistent(tx.id)
    assert tangle.balance_seen_by(carol.address, tx.id) == 1


def test_r2_input_not_in_past_cone(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:
    g = genesis.id
    first = pay(
        tangle, alice, params, (g, g), [output_of(genesis, alice.address)], {carol.address: 1000}
    )
    # Carol spends what she received, but approves only the genesis: the payment is not
    # in her transaction's past cone.
    orphan = pay(
        tangle, carol, params, (g, g), [output_of(first, carol.address)], {bob.address: 1000}
    )
    verdict = tangle.verdict(orphan.id)
    assert verdict.reason is ConflictReason.INPUT_NOT_IN_CONE
    assert first.id.hex() in verdict.detail
    assert "inputs[0]" in verdict.detail
    assert not tangle.is_consistent(orphan.id)


def test_r2_input_from_unknown_transaction(
    tangle: Tangle, genesis: Transaction, alice: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    tx = pay(tangle, alice, params, (g, g), [OutputId(TxId(b"\x09" * 32), 0)], {alice.address: 5})
    assert tangle.verdict(tx.id).reason is ConflictReason.INPUT_NOT_IN_CONE


def test_r2_index_out_of_range(
    tangle: Tangle, genesis: Transaction, alice: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    tx = pay(tangle, alice, params, (g, g), [OutputId(g, 5)], {alice.address: 5})
    verdict = tangle.verdict(tx.id)
    assert verdict.reason is ConflictReason.INPUT_INDEX_OUT_OF_RANGE
    assert "index 5, but the transaction has 2 outputs" in verdict.detail


def test_r3_input_owned_by_someone_else(
    tangle: Tangle, genesis: Transaction, alice: Keypair, bob: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    theft = pay(
        tangle, alice, params, (g, g), [output_of(genesis, bob.address)], {alice.address: 500}
    )
    assert tangle.verdict(theft.id).reason is ConflictReason.INPUT_NOT_OWNED
    assert "locked to tgl1" in tangle.verdict(theft.id).detail


def test_r4_double_spend_in_past_cone(
    tangle: Tangle, genesis: Transaction, alice: Keypair, bob: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    source = output_of(genesis, alice.address)
    first = pay(tangle, alice, params, (g, g), [source], {bob.address: 1000})
    again = pay(tangle, alice, params, (first.id, first.id), [source], {alice.address: 1000})
    verdict = tangle.verdict(again.id)
    assert verdict.reason is ConflictReason.DOUBLE_SPEND
    assert f"already spent by {first.id.hex()}" in verdict.detail


@pytest.mark.parametrize("amount", [999, 1001])
def test_r5_amounts_must_balance(
    amount: int, tangle: Tangle, genesis: Transaction, alice: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    tx = pay(
        tangle, alice, params, (g, g), [output_of(genesis, alice.address)], {alice.address: amount}
    )
    verdict = tangle.verdict(tx.id)
    assert verdict.reason is ConflictReason.AMOUNT_MISMATCH
    assert verdict.detail == f"inputs add up to 1000, outputs to {amount}"


def test_r6_conflicting_cones_and_r1_inheritance(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
    rivals: tuple[Transaction, Transaction],
) -> None:
    to_bob, to_carol = rivals
    source = output_of(genesis, alice.address)
    # Both spends are consistent on their own (§8.4) and form one conflict set.
    assert tangle.is_consistent(to_bob.id)
    assert tangle.is_consistent(to_carol.id)
    assert dict(tangle.ledger.conflict_sets()) == {source: (to_bob.id, to_carol.id)}
    assert not tangle.can_approve(to_bob.id, to_carol.id)
    # Approving both is R6; approving that is R1.
    joined = pay(tangle, carol, params, (to_bob.id, to_carol.id), [], {})
    assert tangle.verdict(joined.id).reason is ConflictReason.CONE_CONFLICT
    low, high = sorted([to_bob.id, to_carol.id])
    assert f"spent by both {low.hex()} and {high.hex()}" in tangle.verdict(joined.id).detail
    child = pay(tangle, bob, params, (joined.id, to_bob.id), [], {})
    assert tangle.verdict(child.id).reason is ConflictReason.PARENT_CONFLICTING
    # Conflicting transactions stay in the DAG (so their approvers can become solid).
    assert joined.id in tangle
    assert child.id in tangle
    assert tangle.consistent_tips() == []


def test_r6_across_deeper_cones(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
    rivals: tuple[Transaction, Transaction],
) -> None:
    """The clash sits below each parent, not in the parents themselves."""
    a, b = rivals
    a2 = pay(tangle, bob, params, (a.id, a.id), [], {}, payload=b"on a")
    b2 = pay(tangle, carol, params, (b.id, b.id), [], {}, payload=b"on b")
    assert tangle.is_consistent(a2.id)
    assert tangle.is_consistent(b2.id)
    joined = pay(tangle, carol, params, (a2.id, b2.id), [], {})
    assert tangle.verdict(joined.id).reason is ConflictReason.CONE_CONFLICT


def test_data_only_transaction(
    tangle: Tangle, genesis: Transaction, carol: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    tx = pay(tangle, carol, params, (g, g), [], {}, payload=b"meter=7;wh=1500")
    assert tangle.is_consistent(tx.id)
    assert tangle.get(tx.id).payload == b"meter=7;wh=1500"


# -- ledger views (§8.2) ------------------------------------------------------------------


def test_unspent_seen_by_conserves_supply(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:
    g = genesis.id
    t1 = pay(
        tangle,
        alice,
        params,
        (g, g),
        [output_of(genesis, alice.address)],
        {carol.address: 300, alice.address: 700},
    )
    t2 = pay(
        tangle, bob, params, (t1.id, g), [output_of(genesis, bob.address)], {carol.address: 500}
    )
    utxos = tangle.unspent_seen_by(t2.id)
    assert sum(o.amount for o in utxos.values()) == tangle.supply
    assert tangle.balance_seen_by(carol.address, t2.id) == 800


def test_view_of_conflicting_roots_raises(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
    rivals: tuple[Transaction, Transaction],
) -> None:
    a, b = rivals
    with pytest.raises(InconsistentCone, match="is spent by both"):
        tangle.unspent_seen_by(a.id, b.id)


def test_ledger_lookups(tangle: Tangle, genesis: Transaction, alice: Keypair) -> None:
    oid = output_of(genesis, alice.address)
    output = tangle.ledger.output(oid)
    assert output is not None
    assert output.amount == 1000
    assert tangle.ledger.output(OutputId(genesis.id, 9)) is None
    assert tangle.ledger.spenders(oid) == ()
    assert tangle.ledger.outputs_of(genesis.id) == genesis.outputs
