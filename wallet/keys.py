"""Deterministic keys: one 32-byte seed, any number of addresses.

Key ``i`` is the Ed25519 key whose seed is BLAKE2b-256 keyed by the wallet seed over
the index (personalised, so it cannot collide with any protocol hash). Restoring the
seed restores every address; the index is all a label needs to remember.
"""

from __future__ import annotations

import hashlib

from tangle.signing import SEED_SIZE, Keypair

PERSON_KEY = b"tangle/walletkey"
MAX_INDEX = 2**31 - 1


def derive_keypair(seed: bytes, index: int) -> Keypair:
    """The keypair at ``index`` (0 ≤ index < 2**31) of ``seed``."""
    if len(seed) != SEED_SIZE:
        raise ValueError(f"seed: expected {SEED_SIZE} bytes, got {len(seed)}")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index: expected 0 to {MAX_INDEX}, got {index}")
    child = hashlib.blake2b(
        index.to_bytes(8, "big"), key=seed, digest_size=SEED_SIZE, person=PERSON_KEY
    ).digest()
    return Keypair(child)
