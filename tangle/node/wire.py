"""Gossip wire messages: binary websocket frames (layer 5, pure).

A frame is ``version (u8) || kind (u8) || payload``:

- ``HELLO``: network id (u64), node id (32 bytes), API URL (UTF-8, up to 256 bytes);
- ``TX``: one transaction's canonical bytes (PROTOCOL §4.2);
- ``REQUEST``: up to 256 transaction ids (32 bytes each) the sender wants;
- ``INV``: up to 256 ids the sender has (its tips), so the receiver can ask;
- ``PEERS``: known peer API URLs, UTF-8, newline-separated, up to 4 KiB.

Decoding is strict like the transaction codec: a frame that breaks these rules is a
protocol error, and the peer that sent it is dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tangle.constants import HASH_SIZE, MAX_TRANSACTION_SIZE
from tangle.node.errors import ProtocolError
from tangle.transaction import TxId

WIRE_VERSION = 1
MAX_IDS = 256
MAX_URL = 256
MAX_PEERS_BYTES = 4096
MAX_FRAME = 2 + max(MAX_TRANSACTION_SIZE, MAX_IDS * HASH_SIZE, MAX_PEERS_BYTES)


class Kind(IntEnum):
    HELLO = 1
    TX = 2
    REQUEST = 3
    INV = 4
    PEERS = 5


@dataclass(frozen=True, slots=True)
class Hello:
    network_id: int
    node_id: bytes
    api: str


def encode(kind: Kind, payload: bytes) -> bytes:
    return bytes((WIRE_VERSION, kind)) + payload


def hello(network_id: int, node_id: bytes, api: str) -> bytes:
    url = api.encode()[:MAX_URL]
    return encode(Kind.HELLO, struct.pack(">Q", network_id) + node_id + url)


def ids(kind: Kind, tx_ids: list[TxId]) -> list[bytes]:
    """One or more REQUEST or INV frames carrying ``tx_ids``."""
    return [encode(kind, b"".join(tx_ids[i : i + MAX_IDS])) for i in range(0, len(tx_ids), MAX_IDS)]


def peers(urls: list[str]) -> bytes:
    return encode(Kind.PEERS, "\n".join(urls).encode()[:MAX_PEERS_BYTES])


def decode(frame: bytes) -> tuple[Kind, bytes]:
    """Split a frame into its kind and payload; check the envelope and the sizes.

    Raises:
        ProtocolError: wrong version, unknown kind, or a payload of the wrong size.
    """
    if len(frame) < 2:
        raise ProtocolError(f"frame: expected at least 2 bytes, got {len(frame)}")
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"frame: expected at most {MAX_FRAME} bytes, got {len(frame)}")
    if frame[0] != WIRE_VERSION:
        raise ProtocolError(f"wire version: expected {WIRE_VERSION}, got {frame[0]}")
    try:
        kind = Kind(frame[1])
    except ValueError:
        raise ProtocolError(f"message kind: expected 1..5, got {frame[1]}") from None
    payload = frame[2:]
    if kind in (Kind.REQUEST, Kind.INV) and (
        not payload or len(payload) % HASH_SIZE or len(payload) > MAX_IDS * HASH_SIZE
    ):
        raise ProtocolError(
            f"{kind.name}: expected 1..{MAX_IDS} ids of {HASH_SIZE} bytes, got {len(payload)} bytes"
        )
    if kind is Kind.HELLO and not 8 + HASH_SIZE <= len(payload) <= 8 + HASH_SIZE + MAX_URL:
        raise ProtocolError(f"HELLO: expected 40..296 bytes, got {len(payload)}")
    if kind is Kind.PEERS and len(payload) > MAX_PEERS_BYTES:
        raise ProtocolError(f"PEERS: expected at most {MAX_PEERS_BYTES} bytes")
    return kind, payload


def read_hello(payload: bytes) -> Hello:
    (network_id,) = struct.unpack(">Q", payload[:8])
    try:
        api = payload[8 + HASH_SIZE :].decode()
    except UnicodeDecodeError:
        raise ProtocolError("HELLO: the API URL is not UTF-8") from None
    return Hello(network_id, payload[8 : 8 + HASH_SIZE], api)


def read_ids(payload: bytes) -> list[TxId]:
    return [TxId(payload[i : i + HASH_SIZE]) for i in range(0, len(payload), HASH_SIZE)]


def read_peers(payload: bytes) -> list[str]:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise ProtocolError("PEERS: not UTF-8") from None
    urls = [u for u in text.split("\n") if u]
    bad = [u for u in urls if not u.startswith(("http://", "https://"))]
    if bad:
        raise ProtocolError(f"PEERS: expected http:// URLs, got {bad[0][:80]!r}")
    return urls
