"""Ed25519 keys and signatures (PROTOCOL §5.6)."""

from __future__ import annotations

import pytest

from tangle import EncodingError, InvalidSignature, Keypair, verify_signature
from tests.helpers import keypair


def test_sign_and_verify() -> None:
    key = keypair(1)
    signature = key.sign(b"essence")
    assert len(signature) == 64
    verify_signature(key.public_key, b"essence", signature)


def test_tampered_signature_rejected() -> None:
    key = keypair(1)
    signature = bytearray(key.sign(b"essence"))
    signature[10] ^= 1
    with pytest.raises(InvalidSignature, match="does not verify under issuer key"):
        verify_signature(key.public_key, b"essence", bytes(signature))


def test_wrong_key_rejected() -> None:
    signature = keypair(1).sign(b"essence")
    with pytest.raises(InvalidSignature, match=keypair(2).public_key.hex()):
        verify_signature(keypair(2).public_key, b"essence", signature)


def test_changed_message_rejected() -> None:
    key = keypair(1)
    with pytest.raises(InvalidSignature):
        verify_signature(key.public_key, b"essencf", key.sign(b"essence"))


def test_wrong_sizes_rejected() -> None:
    key = keypair(1)
    with pytest.raises(InvalidSignature, match="got 32 and 63 bytes"):
        verify_signature(key.public_key, b"m", bytes(63))


def test_seed_checks() -> None:
    with pytest.raises(EncodingError, match="seed: expected 32 bytes, got 31 bytes"):
        Keypair(bytes(31))
    with pytest.raises(TypeError, match="seed: expected bytes, got str"):
        Keypair("0" * 32)  # type: ignore[arg-type]


def test_repr_never_shows_the_seed() -> None:
    seed = bytes(range(32))
    text = repr(Keypair(seed))
    assert seed.hex() not in text
    assert "public_key=" in text
