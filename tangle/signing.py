"""Ed25519 keys, signatures and verification through PyNaCl (layer 1, pure).

The only module that touches ``nacl.signing``; libsodium's errors are mapped to
:class:`~tangle.errors.InvalidSignature` here and nowhere else. Key generation takes
its seed as a parameter: randomness is the caller's business (``secrets.token_bytes``).
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from tangle.address import Address
from tangle.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from tangle.errors import EncodingError, InvalidSignature
from tangle.hashing import address_of

SEED_SIZE = 32


class Keypair:
    """An Ed25519 signing key with its public key and address.

    ``repr`` never shows the seed, so a keypair can be logged without leaking it.
    """

    __slots__ = ("_key", "address", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes):
            raise TypeError(f"seed: expected bytes, got {type(seed).__name__}")
        if len(seed) != SEED_SIZE:
            raise EncodingError("seed", f"{SEED_SIZE} bytes", f"{len(seed)} bytes")
        self._key = SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)
        self.address: Address = Address(address_of(self.public_key))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        signature: bytes = self._key.sign(message).signature
        return signature

    def __repr__(self) -> str:
        return f"Keypair(public_key={self.public_key.hex()})"


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature (§5.6).

    Raises:
        InvalidSignature: the signature does not verify, or the key is not a valid point.
    """
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(
            f"signature: expected a {PUBLIC_KEY_SIZE}-byte key and a {SIGNATURE_SIZE}-byte "
            f"signature, got {len(public_key)} and {len(signature)} bytes"
        )
    try:
        VerifyKey(public_key).verify(message, signature)
    except BadSignatureError:
        raise InvalidSignature(
            f"signature: does not verify under issuer key {public_key.hex()}"
        ) from None
    except CryptoError as exc:  # a key that is not a curve point
        raise InvalidSignature(f"issuer key {public_key.hex()} is not usable: {exc}") from None
