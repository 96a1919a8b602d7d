"""Addresses and their bech32m text form (PROTOCOL §3)."""

from __future__ import annotations

import pytest

from tangle import AddressError, decode_address, encode_address
from tangle.address import _BECH32M_CONST, _CHAR_VALUE, ADDRESS_TEXT_LENGTH, _hrp_expand, _polymod
from tangle.hashing import address_of
from tests.helpers import keypair


@pytest.mark.parametrize(
    "text",
    [
        "A1LQFN3A",
        "a1lqfn3a",
        "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
        "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
        "?1v759aa",
    ],
)
def test_checksum_matches_bip350_vectors(text: str) -> None:
    """The checksum code agrees with BIP-350's published valid bech32m strings."""
    text = text.lower()
    hrp, _, data = text.rpartition("1")
    assert _polymod([*_hrp_expand(hrp), *(_CHAR_VALUE[c] for c in data)]) == _BECH32M_CONST


def test_address_is_hash_of_public_key() -> None:  # §3.1
    key = keypair(1)
    assert key.address == address_of(key.public_key)
    assert len(key.address) == 32


def test_text_round_trip() -> None:  # §3.2
    key = keypair(7)
    text = encode_address(key.address)
    assert text.startswith("tgl1")
    assert len(text) == ADDRESS_TEXT_LENGTH == 62
    assert decode_address(text) == key.address
    assert decode_address(text.upper()) == key.address


def test_typo_fails_checksum() -> None:
    text = encode_address(keypair(7).address)
    typo = text[:20] + ("q" if text[20] != "q" else "p") + text[21:]
    with pytest.raises(AddressError, match=r"checksum mismatch.*is there a typo"):
        decode_address(typo)


def _one_upper(text: str) -> str:
    i = next(i for i, c in enumerate(text) if i > 3 and c.isalpha())
    return text[:i] + text[i].upper() + text[i + 1 :]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_one_upper, "mixed case"),
        (lambda t: "abc" + t[3:], "expected the prefix 'tgl1'"),
        (lambda t: t[:-1], "expected 62 characters, got 61"),
        (lambda t: t + "q", "expected 62 characters, got 63"),
        (lambda t: t[:15] + "b" + t[16:], "only bech32 characters"),
        (lambda t: t.replace("1", "", 1), "expected the prefix"),
    ],
)
def test_malformed_text_rejected(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    text = encode_address(keypair(7).address)
    with pytest.raises(AddressError, match=message):
        decode_address(mutate(text))


def test_encode_rejects_wrong_length() -> None:
    with pytest.raises(AddressError, match="expected 32 bytes, got 3 bytes"):
        encode_address(b"abc")


def test_address_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the point
        decode_address("nonsense")
