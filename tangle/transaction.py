"""Transactions: frozen values and their one canonical encoding (layer 2, pure).

A :class:`Transaction` approves two earlier transactions (trunk and branch), may
spend outputs and create new ones, may carry a data payload, and is signed by one
issuer over its essence (PROTOCOL §4, §5). An instance is always structurally valid:
the constructor enforces every rule of §4.3, so :func:`decode` is just "read the
fields, then construct", and ``encode(decode(b)) == b`` for every accepted ``b``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NewType

from tangle.address import Address, encode_address
from tangle.constants import (
    HASH_SIZE,
    HEADER_SIZE,
    MAX_INPUTS,
    MAX_OUTPUTS,
    MAX_PAYLOAD_SIZE,
    MAX_SUPPLY,
    MAX_TIMESTAMP,
    MAX_TRANSACTION_SIZE,
    MIN_TRANSACTION_SIZE,
    NONCE_SIZE,
    NULL_HASH,
    OUTPUT_ID_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    TRANSACTION_VERSION,
)
from tangle.encoding import Reader, parse_hex, u8, u16, u64
from tangle.errors import EncodingError
from tangle.hashing import essence_hash, transaction_id

TxId = NewType("TxId", bytes)
"""32 bytes: BLAKE2b-256 of a transaction's canonical encoding (§2.1)."""

_U64_MAX = 2**64 - 1
_HEADER = struct.Struct(">BQQ32s32s32s")
_OUTPUT = struct.Struct(">32sQ")
_INPUT = struct.Struct(">32sH")


def _require_bytes(name: str, value: object, size: int) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name}: expected bytes, got {type(value).__name__}")
    if len(value) != size:
        raise EncodingError(name, f"{size} bytes", f"{len(value)} bytes")


def _require_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected int, got {type(value).__name__}")
    if not low <= value <= high:
        raise EncodingError(name, f"an integer in [{low}, {high}]", str(value))


@dataclass(frozen=True, slots=True, order=True)
class OutputId:
    """§2.3: names one output: the creating transaction and the output's index."""

    tx_id: TxId
    """32 bytes: the id of the transaction that created the output."""
    index: int
    """u16: the output's position in that transaction's outputs, below 127."""

    def __post_init__(self) -> None:
        _require_bytes("output id transaction", self.tx_id, HASH_SIZE)
        _require_int("output id index", self.index, 0, MAX_OUTPUTS - 1)

    def to_bytes(self) -> bytes:
        return _INPUT.pack(self.tx_id, self.index)

    @classmethod
    def from_bytes(cls, data: bytes) -> OutputId:
        """Decode the 34-byte form; raises :class:`EncodingError` on a bad length."""
        if len(data) != OUTPUT_ID_SIZE:
            raise EncodingError("output id", f"{OUTPUT_ID_SIZE} bytes", f"{len(data)} bytes")
        tx_id, index = _INPUT.unpack(data)
        return cls(TxId(tx_id), index)

    def hex(self) -> str:
        """The 68-digit lowercase hex form used by the API."""
        return self.to_bytes().hex()

    @classmethod
    def from_hex(cls, text: str) -> OutputId:
        return cls.from_bytes(parse_hex("output id", text, OUTPUT_ID_SIZE))

    def __repr__(self) -> str:
        return f"OutputId({self.tx_id.hex()[:16]}…:{self.index})"


@dataclass(frozen=True, slots=True)
class Output:
    """§4.2: an amount locked to an address; spendable by the address's key holder."""

    address: Address
    """32 bytes: the owner's address (§3.1)."""
    amount: int
    """u64, in the smallest unit: at least 1 (there is no dust rule, §8.6)."""

    def __post_init__(self) -> None:
        _require_bytes("output address", self.address, HASH_SIZE)
        _require_int("output amount", self.amount, 1, MAX_SUPPLY)

    def __repr__(self) -> str:
        return f"Output({encode_address(self.address)}, {self.amount})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction:
    """One vertex of the tangle (§4). Frozen; ``id`` is computed once at construction."""

    network_id: int
    """u64: the network this transaction belongs to (§5.2)."""
    timestamp: int
    """u64, milliseconds since the Unix epoch, as claimed by the issuer (§4.3)."""
    trunk: TxId
    """32 bytes: the first approved transaction (§7.1)."""
    branch: TxId
    """32 bytes: the second approved transaction; may equal ``trunk`` (§7.1)."""
    issuer: bytes
    """32 bytes: the issuer's Ed25519 public key; it signs and owns every input (§5.6)."""
    inputs: tuple[OutputId, ...] = ()
    """Outputs this transaction spends, strictly ascending, at most 127 (§4.3)."""
    outputs: tuple[Output, ...] = ()
    """Outputs this transaction creates, strictly ascending by address, at most 127."""
    payload: bytes = b""
    """Opaque data, at most 4096 bytes: a meter reading, a sensor record (§4.3)."""
    signature: bytes = bytes(SIGNATURE_SIZE)
    """64 bytes: the issuer's Ed25519 signature of the essence hash (§5.6)."""
    nonce: int = 0
    """u64: the proof-of-work nonce (§6)."""
    version: int = TRANSACTION_VERSION
    """u8: the transaction format version; only 1 exists (§4.1)."""

    id: TxId = field(init=False, repr=False, compare=False)
    """The transaction id (§2.1), derived; never passed in."""
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version != TRANSACTION_VERSION:
            raise EncodingError("version", str(TRANSACTION_VERSION), str(self.version))
        _require_int("network_id", self.network_id, 0, _U64_MAX)
        _require_int("timestamp", self.timestamp, 0, MAX_TIMESTAMP)
        _require_bytes("trunk", self.trunk, HASH_SIZE)
        _require_bytes("branch", self.branch, HASH_SIZE)
        _require_bytes("issuer", self.issuer, PUBLIC_KEY_SIZE)
        _check_inputs(self.inputs)
        _check_outputs(self.outputs)
        if not isinstance(self.payload, bytes):
            raise TypeError(f"payload: expected bytes, got {type(self.payload).__name__}")
        if len(self.payload) > MAX_PAYLOAD_SIZE:
            raise EncodingError(
                "payload", f"at most {MAX_PAYLOAD_SIZE} bytes", f"{len(self.payload)} bytes"
            )
        _require_bytes("signature", self.signature, SIGNATURE_SIZE)
        _require_int("nonce", self.nonce, 0, _U64_MAX)
        encoded = self._encode_essence() + self.signature + u64(self.nonce)
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "id", TxId(transaction_id(encoded)))

    # -- encoding (§4.2) ---------------------------------------------------------

    def _encode_essence(self) -> bytes:
        parts = [
            _HEADER.pack(
                self.version,
                self.network_id,
                self.timestamp,
                self.trunk,
                self.branch,
                self.issuer,
            ),
            u8(len(self.inputs)),
        ]
        parts.extend(_INPUT.pack(i.tx_id, i.index) for i in self.inputs)
        parts.append(u8(len(self.outputs)))
        parts.extend(_OUTPUT.pack(o.address, o.amount) for o in self.outputs)
        parts.append(u16(len(self.payload)))
        parts.append(self.payload)
        return b"".join(parts)

    def encode(self) -> bytes:
        """The canonical bytes (§4.2)."""
        return self._encoded

    def essence(self) -> bytes:
        """Every field but the signature and the nonce (§2.2)."""
        return self._encoded[: -(SIGNATURE_SIZE + NONCE_SIZE)]

    def essence_hash(self) -> bytes:
        """§2.2: what the issuer signs."""
        return essence_hash(self.essence())

    def pow_data(self) -> bytes:
        """§6.1: everything but the nonce; the proof of work commits to all of it."""
        return self._encoded[:-NONCE_SIZE]

    @property
    def size(self) -> int:
        """Length of the canonical encoding in bytes."""
        return len(self._encoded)

    @property
    def parents(self) -> tuple[TxId, TxId]:
        return (self.trunk, self.branch)

    @property
    def is_genesis_shaped(self) -> bool:
        """Both parents are the null hash (§8.1); only the genesis may be so."""
        return self.trunk == NULL_HASH and self.branch == NULL_HASH

    @property
    def moves_value(self) -> bool:
        return bool(self.inputs or self.outputs)


def _check_inputs(inputs: tuple[OutputId, ...]) -> None:
    if not isinstance(inputs, tuple):
        raise TypeError(f"inputs: expected a tuple, got {type(inputs).__name__}")
    if len(inputs) > MAX_INPUTS:
        raise EncodingError("inputs", f"at most {MAX_INPUTS}", str(len(inputs)))
    previous: OutputId | None = None
    for n, item in enumerate(inputs):
        if not isinstance(item, OutputId):
            raise TypeError(f"inputs[{n}]: expected OutputId, got {type(item).__name__}")
        if previous is not None and not previous < item:
            raise EncodingError(
                f"inputs[{n}]",
                "strictly ascending inputs (sorted, no duplicates)",
                f"{item!r} after {previous!r}",
            )
        previous = item


def _check_outputs(outputs: tuple[Output, ...]) -> None:
    if not isinstance(outputs, tuple):
        raise TypeError(f"outputs: expected a tuple, got {type(outputs).__name__}")
    if len(outputs) > MAX_OUTPUTS:
        raise EncodingError("outputs", f"at most {MAX_OUTPUTS}", str(len(outputs)))
    previous: bytes | None = None
    for n, item in enumerate(outputs):
        if not isinstance(item, Output):
            raise TypeError(f"outputs[{n}]: expected Output, got {type(item).__name__}")
        if previous is not None and not previous < item.address:
            raise EncodingError(
                f"outputs[{n}]",
                "outputs strictly ascending by address (sorted, one output per address)",
                f"{encode_address(item.address)} after {encode_address(previous)}",
            )
        previous = item.address


def decode(data: bytes) -> Transaction:
    """Parse canonical bytes into a transaction (§4.4).

    Raises:
        TypeError: ``data`` is not ``bytes``.
        EncodingError: truncation, trailing bytes, an oversize count or payload, an
            out-of-range value or a non-canonical order; the error names the field.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"transaction: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_TRANSACTION_SIZE:
        raise EncodingError(
            "transaction", f"at most {MAX_TRANSACTION_SIZE} bytes", f"{len(data)} bytes"
        )
    if len(data) < MIN_TRANSACTION_SIZE:
        raise EncodingError(
            "transaction", f"at least {MIN_TRANSACTION_SIZE} bytes", f"{len(data)} (truncated)"
        )
    reader = Reader(data)
    version = reader.u8("version")
    if version != TRANSACTION_VERSION:
        raise EncodingError("version", str(TRANSACTION_VERSION), str(version))
    _, network_id, timestamp, trunk, branch, issuer = _HEADER.unpack(data[:HEADER_SIZE])
    reader.read("header", HEADER_SIZE - 1)

    input_count = reader.u8("input count")
    if input_count > MAX_INPUTS:
        raise EncodingError("input count", f"at most {MAX_INPUTS}", str(input_count))
    inputs = []
    for n in range(input_count):
        tx_id, index = _INPUT.unpack(reader.read(f"inputs[{n}]", OUTPUT_ID_SIZE))
        if index >= MAX_OUTPUTS:
            raise EncodingError(f"inputs[{n}].index", f"below {MAX_OUTPUTS}", str(index))
        inputs.append(OutputId(TxId(tx_id), index))

    output_count = reader.u8("output count")
    if output_count > MAX_OUTPUTS:
        raise EncodingError("output count", f"at most {MAX_OUTPUTS}", str(output_count))
    outputs = []
    for n in range(output_count):
        address, amount = _OUTPUT.unpack(reader.read(f"outputs[{n}]", _OUTPUT.size))
        if not 1 <= amount <= MAX_SUPPLY:
            raise EncodingError(f"outputs[{n}].amount", f"in [1, {MAX_SUPPLY}]", str(amount))
        outputs.append(Output(Address(address), amount))

    payload_len = reader.u16("payload length")
    if payload_len > MAX_PAYLOAD_SIZE:
        raise EncodingError("payload length", f"at most {MAX_PAYLOAD_SIZE}", str(payload_len))
    payload = reader.read("payload", payload_len)
    signature = reader.read("signature", SIGNATURE_SIZE)
    nonce = reader.u64("nonce")
    reader.done()
    if timestamp > MAX_TIMESTAMP:
        raise EncodingError("timestamp", f"at most {MAX_TIMESTAMP}", str(timestamp))
    return Transaction(
        version=version,
        network_id=network_id,
        timestamp=timestamp,
        trunk=TxId(trunk),
        branch=TxId(branch),
        issuer=issuer,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        payload=payload,
        signature=signature,
        nonce=nonce,
    )
