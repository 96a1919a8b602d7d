"""The protocol's hashes (layer 1, pure, hashlib only).

All are BLAKE2b-256 with a personalisation string of their own (PROTOCOL §1.3),
so an essence hash can never equal a transaction id or an address.
"""

from __future__ import annotations

import hashlib

from tangle.constants import HASH_SIZE, PERSON_ADDRESS, PERSON_ESSENCE, PERSON_TRANSACTION


def essence_hash(essence: bytes) -> bytes:
    """§2.2: the hash the issuer signs."""
    return hashlib.blake2b(essence, digest_size=HASH_SIZE, person=PERSON_ESSENCE).digest()


def transaction_id(encoded: bytes) -> bytes:
    """§2.1: the id of a transaction, over its whole canonical encoding."""
    return hashlib.blake2b(encoded, digest_size=HASH_SIZE, person=PERSON_TRANSACTION).digest()


def address_of(public_key: bytes) -> bytes:
    """§3.1: the 32-byte address of an Ed25519 public key."""
    return hashlib.blake2b(public_key, digest_size=HASH_SIZE, person=PERSON_ADDRESS).digest()
