"""The proof-of-work rule, written for reading (hashlib only; PROTOCOL §6).

1. ``prefix = BLAKE2b-256(data, person="tangle/pow/v1")`` where ``data`` is the
   canonical transaction without its final 8-byte nonce: computed once per search.
2. ``hash = BLAKE2s-256(prefix || nonce as u64 big-endian, person="tglpow01")``:
   40 bytes, so one BLAKE2s compression per nonce (cheap to verify, and easy to
   run over a batch of nonces at once).
3. ``work = number of leading zero bits of hash`` (bit 7 of byte 0 first).
4. The nonce is valid iff ``work >= required``, where ``required`` comes from
   :func:`pow.difficulty.required_difficulty`.

A search returns the *smallest* valid nonce at or after ``start``, so every correct
search (this loop, a vectorized one, a pool of workers) returns the same nonce.
This module imports nothing from ``tangle``.
"""

from __future__ import annotations

import hashlib

PERSON_PREFIX = b"tangle/pow/v1"
"""Personalisation of the stage-1 BLAKE2b-256 over the transaction bytes."""

PERSON_NONCE = b"tglpow01"
"""Personalisation of the stage-2 BLAKE2s-256 over prefix and nonce (8 bytes max)."""

PREFIX_SIZE = 32
NONCE_SIZE = 8
MAX_NONCE = 2**64 - 1
HASH_BITS = 256


def pow_prefix(data: bytes) -> bytes:
    """Stage 1: the 32-byte digest of everything the nonce protects."""
    return hashlib.blake2b(data, digest_size=PREFIX_SIZE, person=PERSON_PREFIX).digest()


def pow_hash(prefix: bytes, nonce: int) -> bytes:
    """Stage 2: the hash whose leading zero bits are the work."""
    return hashlib.blake2s(prefix + nonce.to_bytes(NONCE_SIZE, "big"), person=PERSON_NONCE).digest()


def leading_zero_bits(digest: bytes) -> int:
    """Leading zero bits of ``digest`` read as a big-endian number."""
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


def work(data: bytes, nonce: int) -> int:
    """The work a nonce proves for ``data``: leading zero bits of its hash."""
    return leading_zero_bits(pow_hash(pow_prefix(data), nonce))


def verify(data: bytes, nonce: int, difficulty: int) -> bool:
    """True iff ``nonce`` proves at least ``difficulty`` bits of work for ``data``."""
    return work(data, nonce) >= difficulty


def nonce_range_end(start: int, count: int | None) -> int:
    """The end of ``[start, start + count)``, clipped to the nonce space (None: to its end).

    Raises:
        ValueError: ``start`` is not a u64, or ``count`` is negative.
    """
    if not 0 <= start <= MAX_NONCE:
        raise ValueError(f"start: expected 0..{MAX_NONCE}, got {start}")
    if count is not None and count < 0:
        raise ValueError(f"count: expected >= 0, got {count}")
    return MAX_NONCE + 1 if count is None else min(MAX_NONCE + 1, start + count)


def search(data: bytes, difficulty: int, start: int = 0, count: int | None = None) -> int | None:
    """The smallest nonce in ``[start, start + count)`` meeting ``difficulty``, or None.

    With ``count=None`` the search runs to the end of the nonce space.
    """
    if not 0 <= difficulty <= HASH_BITS:
        raise ValueError(f"difficulty: expected 0..{HASH_BITS}, got {difficulty}")
    end = nonce_range_end(start, count)
    prefix = pow_prefix(data)
    # Reading the hash as an integer: work >= d  <=>  hash < 2**(256 - d).
    bound = 1 << (HASH_BITS - difficulty)
    for nonce in range(start, end):
        if int.from_bytes(pow_hash(prefix, nonce), "big") < bound:
            return nonce
    return None
