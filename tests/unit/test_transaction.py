"""Transactions and their canonical encoding (PROTOCOL §2, §4)."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest

from tangle import EncodingError, Output, OutputId, Transaction, TxId, decode
from tangle.address import Address
from tangle.constants import (
    MAX_INPUTS,
    MAX_OUTPUTS,
    MAX_PAYLOAD_SIZE,
    MAX_SUPPLY,
    MAX_TRANSACTION_SIZE,
    MIN_TRANSACTION_SIZE,
)
from tangle.hashing import essence_hash, transaction_id
from tests.helpers import NETWORK_ID, keypair

VECTORS = Path(__file__).parent.parent / "vectors" / "transaction_v1.json"


def addr(n: int) -> Address:
    return Address(bytes([n]) * 32)


def txid(n: int) -> TxId:
    return TxId(bytes([n]) * 32)


def sample(**changes: object) -> Transaction:
    fields: dict[str, object] = {
        "network_id": NETWORK_ID,
        "timestamp": 1_700_000_000_123,
        "trunk": txid(1),
        "branch": txid(2),
        "issuer": keypair(1).public_key,
        "inputs": (OutputId(txid(3), 0), OutputId(txid(3), 5)),
        "outputs": (Output(addr(4), 10), Output(addr(9), 990)),
        "payload": b"meter=7;wh=1234",
        "signature": bytes(range(64)),
        "nonce": 77,
    }
    fields.update(changes)
    return Transaction(**fields)  # type: ignore[arg-type]


# -- layout and round trip (§4.2) ---------------------------------------------------------


def test_encoding_layout_follows_protocol_4_2() -> None:
    tx = sample()
    raw = tx.encode()
    assert raw[0] == 1  # §4.1 version first
    assert struct.unpack(">Q", raw[1:9])[0] == NETWORK_ID
    assert struct.unpack(">Q", raw[9:17])[0] == 1_700_000_000_123
    assert raw[17:49] == txid(1)
    assert raw[49:81] == txid(2)
    assert raw[81:113] == tx.issuer
    assert raw[113] == 2  # input count
    assert raw[114:148] == txid(3) + b"\x00\x00"
    assert raw[148:182] == txid(3) + b"\x00\x05"
    assert raw[182] == 2  # output count
    assert raw[183:223] == addr(4) + (10).to_bytes(8, "big")
    assert raw[263:265] == len(b"meter=7;wh=1234").to_bytes(2, "big")
    assert raw[-72:-8] == bytes(range(64))
    assert raw[-8:] == (77).to_bytes(8, "big")
    assert tx.size == len(raw) == MIN_TRANSACTION_SIZE + 2 * 34 + 2 * 40 + 15


def test_round_trip_and_id() -> None:
    tx = sample()
    again = decode(tx.encode())
    assert again == tx
    assert again.id == tx.id == transaction_id(tx.encode())  # §2.1


def test_essence_excludes_signature_and_nonce() -> None:  # §2.2
    tx = sample()
    other = dataclasses.replace(tx, signature=bytes(64), nonce=5)
    assert tx.essence() == other.essence()
    assert tx.essence_hash() == essence_hash(tx.essence())
    assert tx.id != other.id
    assert tx.pow_data() == tx.encode()[:-8]


def test_golden_vector() -> None:
    """A format change must show up here: the bytes and id are pinned (§4.2, §2.1)."""
    vector = json.loads(VECTORS.read_text())
    tx = decode(bytes.fromhex(vector["raw"]))
    assert tx.id.hex() == vector["id"]
    assert tx.essence_hash().hex() == vector["essence_hash"]
    assert tx.encode().hex() == vector["raw"]
    assert sample().encode().hex() == vector["raw"]


def test_empty_transaction_is_smallest() -> None:  # §4.2
    tx = sample(inputs=(), outputs=(), payload=b"")
    assert tx.size == MIN_TRANSACTION_SIZE
    assert not tx.moves_value
    assert decode(tx.encode()) == tx


def test_largest_transaction_decodes() -> None:  # §4.3 caps
    tx = sample(
        inputs=tuple(OutputId(txid(3), i) for i in range(MAX_INPUTS)),
        outputs=tuple(Output(Address(i.to_bytes(32, "big")), 1) for i in range(MAX_OUTPUTS)),
        payload=b"x" * MAX_PAYLOAD_SIZE,
    )
    assert tx.size == MAX_TRANSACTION_SIZE
    assert decode(tx.encode()) == tx


def test_trunk_and_branch_may_coincide() -> None:  # §7.1
    tx = sample(branch=txid(1))
    assert decode(tx.encode()).parents == (txid(1), txid(1))


# -- strict decoding (§4.4) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "field"),
    [
        (0, "transaction"),
        (100, "transaction"),
        (200, "outputs[0]"),
        (240, "outputs[1]"),
        (-80, "payload"),
        (-20, "signature"),
        (-3, "nonce"),
    ],
)
def test_truncation_names_the_field(cut: int, field: str) -> None:
    raw = sample().encode()
    with pytest.raises(EncodingError) as info:
        decode(raw[:cut])
    assert info.value.field == field
    assert "truncated" in str(info.value)


def test_truncation_inside_inputs_names_the_input() -> None:
    raw = sample(inputs=tuple(OutputId(txid(3), i) for i in range(5))).encode()
    with pytest.raises(EncodingError) as info:
        decode(raw[: 114 + 2 * 34 + 7])
    assert info.value.field == "inputs[2]"
    assert str(info.value) == "inputs[2]: expected 34 bytes at offset 182, got 7 (truncated)"


def test_trailing_bytes_rejected() -> None:
    with pytest.raises(EncodingError, match="1 trailing bytes"):
        decode(sample().encode() + b"\x00")


def test_oversize_input_rejected_before_parsing() -> None:
    with pytest.raises(EncodingError, match=f"at most {MAX_TRANSACTION_SIZE} bytes"):
        decode(b"\x01" * (MAX_TRANSACTION_SIZE + 1))


def test_decode_requires_bytes() -> None:
    with pytest.raises(TypeError, match="expected bytes, got bytearray"):
        decode(bytearray(sample().encode()))  # type: ignore[arg-type]


def patch(raw: bytes, offset: int, new: bytes) -> bytes:
    return raw[:offset] + new + raw[offset + len(new) :]


def test_unknown_version_rejected() -> None:  # §4.1
    with pytest.raises(EncodingError, match="version: expected 1, got 2"):
        decode(patch(sample().encode(), 0, b"\x02"))


def test_input_count_over_cap_rejected() -> None:  # §4.3.3
    raw = sample(inputs=(), outputs=()).encode()
    with pytest.raises(EncodingError, match=f"input count: expected at most {MAX_INPUTS}, got 128"):
        decode(patch(raw, 113, b"\x80"))


def test_output_count_over_cap_rejected() -> None:  # §4.3.3
    raw = sample(inputs=(), outputs=()).encode()
    with pytest.raises(EncodingError, match="output count: expected at most 127, got 200"):
        decode(patch(raw, 114, b"\xc8"))


def test_payload_length_over_cap_rejected() -> None:  # §4.3.8
    raw = sample(inputs=(), outputs=(), payload=b"").encode()
    with pytest.raises(EncodingError, match="payload length: expected at most 4096, got 4097"):
        decode(patch(raw, 115, (4097).to_bytes(2, "big")))


def test_input_index_out_of_range_rejected() -> None:  # §4.3.4
    raw = sample().encode()
    with pytest.raises(EncodingError, match=r"inputs\[1\].index: expected below 127, got 300"):
        decode(patch(raw, 148 + 32, (300).to_bytes(2, "big")))


@pytest.mark.parametrize("amount", [0, MAX_SUPPLY + 1, 2**64 - 1])
def test_output_amount_out_of_range_rejected(amount: int) -> None:  # §4.3.7
    raw = sample().encode()
    with pytest.raises(EncodingError, match=r"outputs\[0\].amount"):
        decode(patch(raw, 183 + 32, amount.to_bytes(8, "big")))


def test_unsorted_inputs_are_non_canonical() -> None:  # §4.3.5
    raw = sample().encode()
    swapped = raw[:114] + raw[148:182] + raw[114:148] + raw[182:]
    with pytest.raises(EncodingError, match=r"inputs\[1\]: expected strictly ascending inputs"):
        decode(swapped)


def test_duplicate_inputs_are_non_canonical() -> None:  # §4.3.5
    raw = sample().encode()
    duplicated = raw[:148] + raw[114:148] + raw[182:]
    with pytest.raises(EncodingError, match="no duplicates"):
        decode(duplicated)


def test_unsorted_outputs_are_non_canonical() -> None:  # §4.3.6
    raw = sample().encode()
    swapped = raw[:183] + raw[223:263] + raw[183:223] + raw[263:]
    with pytest.raises(EncodingError, match=r"outputs\[1\]: expected outputs strictly ascending"):
        decode(swapped)


def test_timestamp_out_of_range_rejected() -> None:  # §4.3.2
    raw = sample().encode()
    with pytest.raises(EncodingError, match="timestamp"):
        decode(patch(raw, 9, (2**63).to_bytes(8, "big")))


# -- constructor checks: an invalid Transaction cannot exist (§4.3) -----------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trunk": b"short"}, "trunk: expected 32 bytes, got 5 bytes"),
        ({"issuer": bytes(31)}, "issuer: expected 32 bytes, got 31 bytes"),
        ({"signature": bytes(63)}, "signature: expected 64 bytes, got 63 bytes"),
        ({"nonce": 2**64}, "nonce: expected an integer in"),
        ({"network_id": -1}, "network_id: expected an integer in"),
        ({"payload": b"x" * 4097}, "payload: expected at most 4096 bytes, got 4097 bytes"),
        ({"version": 2}, "version: expected 1, got 2"),
        (
            {"inputs": tuple(OutputId(txid(3), 0) for _ in range(2))},
            r"inputs\[1\]: expected strictly ascending",
        ),
        (
            {"outputs": (Output(addr(5), 1), Output(addr(5), 2))},
            "one output per address",
        ),
        (
            {"inputs": tuple(OutputId(TxId(i.to_bytes(32, "big")), 0) for i in range(128))},
            "inputs: expected at most 127, got 128",
        ),
    ],
)
def test_constructor_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        sample(**changes)


def test_constructor_type_errors() -> None:
    with pytest.raises(TypeError, match="trunk: expected bytes, got str"):
        sample(trunk="00" * 32)
    with pytest.raises(TypeError, match="nonce: expected int, got bool"):
        sample(nonce=True)
    with pytest.raises(TypeError, match="inputs: expected a tuple, got list"):
        sample(inputs=[])
    with pytest.raises(TypeError, match=r"outputs\[0\]: expected Output"):
        sample(outputs=((addr(1), 5),))


def test_output_and_output_id_checks() -> None:
    with pytest.raises(EncodingError, match="output amount: expected an integer in"):
        Output(addr(1), 0)
    with pytest.raises(EncodingError, match="output id index"):
        OutputId(txid(1), 127)
    oid = OutputId(txid(1), 3)
    assert OutputId.from_hex(oid.hex()) == oid
    assert len(oid.hex()) == 68
    with pytest.raises(EncodingError, match="output id: expected 34 bytes"):
        OutputId.from_hex("00" * 33)
    with pytest.raises(EncodingError, match="expected hexadecimal text"):
        OutputId.from_hex("zz")


def test_values_are_frozen() -> None:
    tx = sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.nonce = 5  # type: ignore[misc]
