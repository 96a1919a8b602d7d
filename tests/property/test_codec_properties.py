"""Encoding round trips and rejection of mutated bytes (PROTOCOL §4.4, §5)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from tangle import (
    EncodingError,
    InvalidTransaction,
    NetworkParams,
    OutputId,
    decode,
    decode_address,
    encode_address,
    make_genesis,
    validate_stateless,
)
from tangle.address import ADDRESS_TEXT_LENGTH
from tests.helpers import NETWORK_ID, keypair, transfer
from tests.property.strategies import hashes, transactions

PARAMS = NetworkParams(network_id=NETWORK_ID, base_difficulty=6)
ALICE, BOB = keypair(1), keypair(2)
GENESIS = make_genesis(NETWORK_ID, {ALICE.address: 1000})


@given(transactions())
def test_round_trip(tx) -> None:  # type: ignore[no-untyped-def]
    raw = tx.encode()
    again = decode(raw)
    assert again == tx
    assert again.id == tx.id
    assert again.encode() == raw  # §4.4: encode(decode(b)) == b


@given(transactions(), st.data())
def test_truncation_and_trailing_bytes_always_rejected(tx, data) -> None:  # type: ignore[no-untyped-def]
    raw = tx.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        decode(raw[:cut])
    except EncodingError:
        pass
    else:
        raise AssertionError(f"a {cut}-byte prefix of a {len(raw)}-byte transaction decoded")
    extra = data.draw(st.binary(min_size=1, max_size=40))
    try:
        decode(raw + extra)
    except EncodingError:
        pass
    else:
        raise AssertionError("trailing bytes were accepted")


def signed_payment(payload: bytes):  # type: ignore[no-untyped-def]
    g = GENESIS.id
    return transfer(
        ALICE,
        PARAMS,
        (g, g),
        [OutputId(g, 0)],
        {BOB.address: 10, ALICE.address: 990},
        payload=payload,
    )


@given(st.binary(max_size=64), st.data())
def test_any_single_byte_change_is_caught(payload: bytes, data) -> None:  # type: ignore[no-untyped-def]
    """A changed byte is rejected by decoding or by §5, unless it only changed the nonce,
    which the signature does not cover: then it is a different transaction (new id)
    with the same signed essence, not a forgery."""
    tx = signed_payment(payload)
    validate_stateless(tx, PARAMS)
    raw = bytearray(tx.encode())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    try:
        mutated = decode(bytes(raw))
        validate_stateless(mutated, PARAMS)
    except (EncodingError, InvalidTransaction):
        return
    assert position >= len(raw) - 8, f"a change at byte {position} went unnoticed"
    assert mutated.id != tx.id
    assert mutated.essence() == tx.essence()
    assert mutated.signature == tx.signature


@given(hashes)
def test_address_round_trip(raw: bytes) -> None:  # §3.2
    text = encode_address(raw)  # type: ignore[arg-type]
    assert len(text) == ADDRESS_TEXT_LENGTH
    assert decode_address(text) == raw
    assert decode_address(text.upper()) == raw


@given(hashes, st.data())
def test_address_single_substitution_rejected(raw: bytes, data) -> None:  # type: ignore[no-untyped-def]
    text = encode_address(raw)  # type: ignore[arg-type]
    position = data.draw(st.integers(4, len(text) - 1))
    replacement = data.draw(
        st.sampled_from("qpzry9x8gf2tvdw0s3jn54khce6mua7l").filter(lambda c: c != text[position])
    )
    typo = text[:position] + replacement + text[position + 1 :]
    try:
        decode_address(typo)
    except EncodingError:
        return
    raise AssertionError(f"{typo} decoded")


@given(transactions())
def test_replace_keeps_values_valid(tx) -> None:  # type: ignore[no-untyped-def]
    changed = dataclasses.replace(tx, nonce=(tx.nonce + 1) % 2**64)
    assert changed.id != tx.id
    assert changed.essence() == tx.essence()
