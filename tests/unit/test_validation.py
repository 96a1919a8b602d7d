"""Stateless validity (PROTOCOL §5), cheapest rule first."""

from __future__ import annotations

import dataclasses

import pytest

from tangle import (
    Address,
    InsufficientWork,
    InvalidSignature,
    InvalidTransaction,
    Keypair,
    NetworkParams,
    Output,
    OutputId,
    Transaction,
    TxId,
    ValueRuleViolation,
    WrongNetwork,
    sign,
    solve,
    validate_stateless,
)
from tangle.constants import MAX_SUPPLY, NULL_HASH
from tests.helpers import NETWORK_ID, transfer


def unsigned(key: Keypair, genesis: Transaction, **changes: object) -> Transaction:
    fields: dict[str, object] = {
        "network_id": NETWORK_ID,
        "timestamp": 5,
        "trunk": genesis.id,
        "branch": genesis.id,
        "issuer": key.public_key,
        "inputs": (OutputId(genesis.id, 0),),
        "outputs": (Output(key.address, 1000),),
    }
    fields.update(changes)
    return Transaction(**fields)  # type: ignore[arg-type]


def finished(tx: Transaction, key: Keypair, params: NetworkParams) -> Transaction:
    return solve(sign(tx, key), params)


def test_valid_transfer_passes(alice: Keypair, genesis: Transaction, params: NetworkParams) -> None:
    tx = finished(unsigned(alice, genesis), alice, params)
    validate_stateless(tx, params)


def test_wrong_network(alice: Keypair, genesis: Transaction, params: NetworkParams) -> None:  # §5.2
    tx = finished(unsigned(alice, genesis, network_id=NETWORK_ID + 1), alice, params)
    with pytest.raises(WrongNetwork, match=f"expected {NETWORK_ID}, got {NETWORK_ID + 1}"):
        validate_stateless(tx, params)


@pytest.mark.parametrize("field", ["trunk", "branch"])
def test_null_parent(
    field: str, alice: Keypair, genesis: Transaction, params: NetworkParams
) -> None:  # §5.3
    tx = finished(unsigned(alice, genesis, **{field: TxId(NULL_HASH)}), alice, params)
    with pytest.raises(InvalidTransaction, match=f"{field}: expected the id of an earlier"):
        validate_stateless(tx, params)


def test_inputs_without_outputs(
    alice: Keypair, genesis: Transaction, params: NetworkParams
) -> None:
    tx = finished(unsigned(alice, genesis, outputs=()), alice, params)
    with pytest.raises(ValueRuleViolation, match="value would be destroyed") as info:
        validate_stateless(tx, params)
    assert info.value.rule == "§5.4"


def test_outputs_without_inputs(
    alice: Keypair, genesis: Transaction, params: NetworkParams
) -> None:
    tx = finished(unsigned(alice, genesis, inputs=()), alice, params)
    with pytest.raises(ValueRuleViolation, match="value would be created"):
        validate_stateless(tx, params)


def test_output_sum_over_supply(
    alice: Keypair, bob: Keypair, genesis: Transaction, params: NetworkParams
) -> None:
    outputs = tuple(
        sorted((Output(alice.address, MAX_SUPPLY), Output(bob.address, 1)), key=lambda o: o.address)
    )
    tx = finished(unsigned(alice, genesis, outputs=outputs), alice, params)
    with pytest.raises(ValueRuleViolation, match="more than the maximum supply") as info:
        validate_stateless(tx, params)
    assert info.value.rule == "§5.5"


def test_insufficient_work(alice: Keypair, genesis: Transaction) -> None:  # §5.7
    hard = NetworkParams(network_id=NETWORK_ID, base_difficulty=40)
    tx = sign(unsigned(alice, genesis), alice)
    with pytest.raises(InsufficientWork, match="expected at least 40 leading zero bits") as info:
        validate_stateless(tx, hard)  # a 303-byte payment needs just the base
    assert info.value.required == 40
    assert info.value.actual < 40


def test_wrong_nonce_rejected(alice: Keypair, genesis: Transaction) -> None:  # §5.7
    params = NetworkParams(network_id=NETWORK_ID, base_difficulty=12)
    tx = solve(sign(unsigned(alice, genesis), alice), params)
    assert tx.nonce > 0  # the smallest valid nonce: every smaller one is invalid
    with pytest.raises(InsufficientWork, match="expected at least 12 leading zero bits"):
        validate_stateless(dataclasses.replace(tx, nonce=tx.nonce - 1), params)


def test_work_for_a_lower_difficulty_rejected(alice: Keypair, genesis: Transaction) -> None:
    easy = NetworkParams(network_id=NETWORK_ID, base_difficulty=2)
    strict = NetworkParams(network_id=NETWORK_ID, base_difficulty=20)
    tx = solve(sign(unsigned(alice, genesis), alice), easy)
    validate_stateless(tx, easy)
    with pytest.raises(InsufficientWork) as info:
        validate_stateless(tx, strict)
    assert info.value.required == 20
    assert 2 <= info.value.actual < 20


def test_changed_byte_after_work_rejected(alice: Keypair, genesis: Transaction) -> None:
    params = NetworkParams(network_id=NETWORK_ID, base_difficulty=12)
    tx = solve(sign(unsigned(alice, genesis, payload=b"wh=100"), alice), params)
    changed = dataclasses.replace(tx, payload=b"wh=900")  # same nonce, other bytes
    with pytest.raises(InvalidTransaction):  # the work or else the signature fails
        validate_stateless(changed, params)


def test_work_scales_with_size(alice: Keypair, genesis: Transaction, params: NetworkParams) -> None:
    small = unsigned(alice, genesis, inputs=(), outputs=())
    big = unsigned(alice, genesis, inputs=(), outputs=(), payload=b"x" * 4000)
    assert params.required_difficulty(small) == params.base_difficulty
    assert params.required_difficulty(big) == params.base_difficulty + 4  # 4189 bytes


def test_tampered_signature(alice: Keypair, genesis: Transaction, params: NetworkParams) -> None:
    good = sign(unsigned(alice, genesis), alice)
    bad = bytearray(good.signature)
    bad[0] ^= 0xFF
    tx = solve(dataclasses.replace(good, signature=bytes(bad)), params)
    with pytest.raises(InvalidSignature, match="does not verify"):  # §5.6
        validate_stateless(tx, params)


def test_signed_by_someone_else(
    alice: Keypair, bob: Keypair, genesis: Transaction, params: NetworkParams
) -> None:
    tx = unsigned(alice, genesis)
    forged = solve(dataclasses.replace(tx, signature=bob.sign(tx.essence_hash())), params)
    with pytest.raises(InvalidSignature, match=alice.public_key.hex()):
        validate_stateless(forged, params)


def test_sign_refuses_a_foreign_issuer(alice: Keypair, bob: Keypair, genesis: Transaction) -> None:
    with pytest.raises(ValueError, match="issuer: the transaction names"):
        sign(unsigned(alice, genesis), bob)


def test_cheap_rules_are_reported_first(
    alice: Keypair, genesis: Transaction, params: NetworkParams
) -> None:
    """A transaction breaking several rules reports the cheapest: network before work."""
    tx = unsigned(alice, genesis, network_id=9)  # unsigned and without work, too
    with pytest.raises(WrongNetwork):
        validate_stateless(tx, params)


def test_changing_any_essence_field_breaks_the_signature(
    alice: Keypair, genesis: Transaction, params: NetworkParams
) -> None:
    tx = transfer(alice, params, (genesis.id, genesis.id), payload=b"reading=1")
    changed = solve(dataclasses.replace(tx, payload=b"reading=2"), params)
    with pytest.raises(InvalidSignature):
        validate_stateless(changed, params)


def test_network_params_checks() -> None:
    with pytest.raises(ValueError, match="network_id"):
        NetworkParams(network_id=-1)
    with pytest.raises(ValueError, match="base_difficulty"):
        NetworkParams(network_id=1, base_difficulty=300)


def test_select_inputs_takes_largest_first() -> None:
    from tangle.builder import select_inputs

    a, b, c = (OutputId(TxId(bytes([i]) * 32), 0) for i in (1, 2, 3))
    assert select_inputs([(a, 5), (b, 50), (c, 20)], 60) == ([b, c], 70)
    assert select_inputs([(a, 5), (b, 50)], 50) == ([b], 50)
    assert select_inputs([(a, 5)], 9) == ([a], 5)  # short: the caller decides
    assert select_inputs([], 1) == ([], 0)


def test_payments_with_change() -> None:
    from tangle.builder import payments_with_change

    payee, payer = Address(b"\x01" * 32), Address(b"\x02" * 32)
    assert payments_with_change(payee, 30, payer, 100) == {payee: 30, payer: 70}
    assert payments_with_change(payee, 100, payer, 100) == {payee: 100}  # no change output
    assert payments_with_change(payer, 30, payer, 100) == {payer: 100}  # paying oneself: one output
    with pytest.raises(ValueError, match="expected at least 30, got 20"):
        payments_with_change(payee, 30, payer, 20)
