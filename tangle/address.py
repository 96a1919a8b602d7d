"""Addresses and their checksummed text form (layer 1, pure).

An address is the 32-byte hash of an Ed25519 public key (PROTOCOL §3.1). People and
URIs see it as bech32m text with the prefix ``tgl`` (§3.2, BIP-350), whose 30-bit
checksum catches any typo of up to four characters, so a mistyped address fails to
decode instead of paying a stranger.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NewType

from tangle.constants import ADDRESS_HRP, HASH_SIZE
from tangle.errors import AddressError

Address = NewType("Address", bytes)
"""32 bytes: BLAKE2b-256 of a public key (§3.1)."""

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_VALUE = {c: i for i, c in enumerate(_CHARSET)}
_BECH32M_CONST = 0x2BC830A3
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LEN = 6
_DATA_CHARS = (HASH_SIZE * 8 + 4) // 5  # 52 five-bit groups carry 32 bytes
ADDRESS_TEXT_LENGTH = len(ADDRESS_HRP) + 1 + _DATA_CHARS + _CHECKSUM_LEN


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(groups: list[int], text: str) -> bytes:
    acc = 0
    bits = 0
    out = bytearray()
    for group in groups:
        acc = (acc << 5) | group
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise AddressError("address", "zero padding bits", f"non-zero padding in {text!r}")
    return bytes(out)


def encode_address(address: bytes) -> str:
    """§3.2: the canonical (lowercase) text form of a 32-byte address."""
    if len(address) != HASH_SIZE:
        raise AddressError("address", f"{HASH_SIZE} bytes", f"{len(address)} bytes")
    data = _to_5bit(address)
    polymod = _polymod([*_hrp_expand(ADDRESS_HRP), *data, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(_CHECKSUM_LEN)]
    return ADDRESS_HRP + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_address(text: str) -> Address:
    """Parse the text form of an address (§3.2); all lowercase or all uppercase.

    Raises:
        AddressError: wrong prefix, length, character, case or checksum; the message
            says which, with what was expected.
    """
    shown = text if len(text) <= 100 else text[:100] + "..."
    if text != text.lower() and text != text.upper():
        raise AddressError("address", "all lowercase or all uppercase", f"mixed case {shown!r}")
    text = text.lower()
    hrp, sep, rest = text.rpartition("1")
    if not sep or hrp != ADDRESS_HRP:
        raise AddressError("address", f"the prefix '{ADDRESS_HRP}1'", repr(shown))
    if len(text) != ADDRESS_TEXT_LENGTH:
        raise AddressError(
            "address", f"{ADDRESS_TEXT_LENGTH} characters", f"{len(text)} in {shown!r}"
        )
    bad = sorted({c for c in rest if c not in _CHAR_VALUE})
    if bad:
        raise AddressError(
            "address", "only bech32 characters (no 1, b, i, o)", f"{''.join(bad)!r} in {shown!r}"
        )
    values = [_CHAR_VALUE[c] for c in rest]
    if _polymod([*_hrp_expand(hrp), *values]) != _BECH32M_CONST:
        raise AddressError(
            "address", "a valid checksum", f"a checksum mismatch in {shown!r} (is there a typo?)"
        )
    return Address(_from_5bit(values[:-_CHECKSUM_LEN], shown))
