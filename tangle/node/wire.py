"""Gossip wire messages: binary websocket frames (layer 5, pure).

A frame is ``version (u8) || kind (u8) || payload``:

- ``HELLO``: network id (u64), node id (32 bytes: the node's Ed25519 public key), a fresh
  challenge (32 random bytes), API URL (printable ASCII, up to 256 bytes, may be empty);
- ``AUTH``: the 64-byte signature, by the node key, of :func:`auth_message` over the
  challenge the peer sent in its HELLO: it proves the node id. The dialler sends its
  AUTH on the peer's HELLO; the accepting side sends its own only once the dialler's
  verified, so it signs nothing for a stranger;
- ``TX``: one transaction's canonical bytes (PROTOCOL §4.2);
- ``REQUEST``: up to 256 transaction ids (32 bytes each) the sender wants;
- ``INV``: up to 256 ids the sender has (its tips), so the receiver can ask;
- ``PEERS``: known peer API URLs, newline-separated, whole URLs only, up to 4 KiB.

Decoding is strict like the transaction codec: a frame that breaks these rules is a
protocol error, and the peer that sent it is dropped. Two exceptions, because they carry
what the sender heard from others: a PEERS entry that is not a valid URL is skipped,
and a HELLO's API URL that is not one is read as none.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from tangle.constants import HASH_SIZE, MAX_TRANSACTION_SIZE
from tangle.node.errors import ProtocolError
from tangle.transaction import TxId

WIRE_VERSION = 2
MAX_IDS = 256
MAX_URL = 256
MAX_PEERS_BYTES = 4096
CHALLENGE_SIZE = 32
SIGNATURE_SIZE = 64
_HELLO_FIXED = 8 + HASH_SIZE + CHALLENGE_SIZE
MAX_FRAME = 2 + max(MAX_TRANSACTION_SIZE, MAX_IDS * HASH_SIZE, MAX_PEERS_BYTES)
AUTH_DOMAIN = b"tangle/gossip-auth/v1"
_URL = re.compile(
    rb"https?://(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    rb"(?::(?P<port>[0-9]{1,5}))?"
)
"""``scheme://host[:port]`` only: a node's API is its root, so no path, query or user
(a peer cannot make nodes fetch arbitrary paths); plain ASCII, safe in a log line."""


class Kind(IntEnum):
    HELLO = 1
    TX = 2
    REQUEST = 3
    INV = 4
    PEERS = 5
    AUTH = 6


@dataclass(frozen=True, slots=True)
class Hello:
    network_id: int
    node_id: bytes
    challenge: bytes
    api: str


def valid_url(url: str | bytes) -> bool:
    """``http(s)://host[:port]`` (a DNS name, an IPv4 address or a bracketed IPv6 one;
    a port 1..65535), at most ``MAX_URL`` bytes."""
    if isinstance(url, str):
        if not url.isascii():
            return False
        url = url.encode()
    match = _URL.fullmatch(url) if len(url) <= MAX_URL else None
    if match is None:
        return False
    port = match.group("port")
    return port is None or 0 < int(port) < 65536


def encode(kind: Kind, payload: bytes) -> bytes:
    return bytes((WIRE_VERSION, kind)) + payload


def hello(network_id: int, node_id: bytes, challenge: bytes, api: str) -> bytes:
    """A HELLO; an ``api`` that is not a valid URL is sent as none (never cut)."""
    url = api.encode() if valid_url(api) else b""
    return encode(Kind.HELLO, struct.pack(">Q", network_id) + node_id + challenge + url)


def auth_message(
    network_id: int, challenge: bytes, signer: bytes, verifier: bytes, dialler: bool
) -> bytes:
    """What a node signs to prove its id to a peer: the peer's challenge, both ids, and
    whether the signer dialled (so a proof made for one direction fails in the other)."""
    role = b"D" if dialler else b"A"
    return AUTH_DOMAIN + role + struct.pack(">Q", network_id) + challenge + signer + verifier


def ids(kind: Kind, tx_ids: list[TxId]) -> list[bytes]:
    """One or more REQUEST or INV frames carrying ``tx_ids``."""
    return [encode(kind, b"".join(tx_ids[i : i + MAX_IDS])) for i in range(0, len(tx_ids), MAX_IDS)]


def peers(urls: Iterable[str]) -> bytes:
    """A PEERS frame of as many of ``urls`` as fit whole; invalid ones are left out."""
    packed: list[bytes] = []
    size = 0
    for url in urls:
        if not valid_url(url):
            continue
        raw = url.encode()
        cost = len(raw) + (1 if packed else 0)
        if size + cost > MAX_PEERS_BYTES:
            continue  # a shorter one may still fit
        packed.append(raw)
        size += cost
    return encode(Kind.PEERS, b"\n".join(packed))


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
        raise ProtocolError(f"message kind: expected 1..{len(Kind)}, got {frame[1]}") from None
    payload = frame[2:]
    if kind in (Kind.REQUEST, Kind.INV) and (
        not payload or len(payload) % HASH_SIZE or len(payload) > MAX_IDS * HASH_SIZE
    ):
        raise ProtocolError(
            f"{kind.name}: expected 1..{MAX_IDS} ids of {HASH_SIZE} bytes, got {len(payload)} bytes"
        )
    if kind is Kind.HELLO and not _HELLO_FIXED <= len(payload) <= _HELLO_FIXED + MAX_URL:
        raise ProtocolError(
            f"HELLO: expected {_HELLO_FIXED}..{_HELLO_FIXED + MAX_URL} bytes, got {len(payload)}"
        )
    if kind is Kind.AUTH and len(payload) != SIGNATURE_SIZE:
        raise ProtocolError(f"AUTH: expected {SIGNATURE_SIZE} bytes, got {len(payload)}")
    if kind is Kind.PEERS and len(payload) > MAX_PEERS_BYTES:
        raise ProtocolError(f"PEERS: expected at most {MAX_PEERS_BYTES} bytes, got {len(payload)}")
    return kind, payload


def read_hello(payload: bytes) -> Hello:
    """The HELLO's fields; an API URL that is not a valid URL reads as none."""
    (network_id,) = struct.unpack(">Q", payload[:8])
    url = payload[_HELLO_FIXED:]
    api = url.decode("ascii") if valid_url(url) else ""
    node_id = payload[8 : 8 + HASH_SIZE]
    return Hello(network_id, node_id, payload[8 + HASH_SIZE : _HELLO_FIXED], api)


def read_ids(payload: bytes) -> list[TxId]:
    return [TxId(payload[i : i + HASH_SIZE]) for i in range(0, len(payload), HASH_SIZE)]


def read_peers(payload: bytes) -> list[str]:
    """The valid URLs of a PEERS payload; anything else in it is skipped."""
    return [u.decode("ascii") for u in payload.split(b"\n") if valid_url(u)]
