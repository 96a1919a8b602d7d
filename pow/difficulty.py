"""How much work a transaction must prove (PROTOCOL §6.2).

``required = base + size_bits(size)``: every doubling of a transaction beyond 256
bytes adds one bit, so work per byte stays about constant and a big data payload
costs its sender, not the network (the idea of IOTA's TIP-12 score, in whole bits).
"""

from __future__ import annotations

SIZE_UNIT = 256
"""Bytes covered by the base difficulty; each doubling past this adds one bit."""

MAX_DIFFICULTY = 256


def size_bits(size: int) -> int:
    """ceil(log2(ceil(size / 256))), and 0 for transactions of 256 bytes or less."""
    if size < 0:
        raise ValueError(f"size: expected >= 0, got {size}")
    return max(0, (size - 1) // SIZE_UNIT).bit_length()


def required_difficulty(base: int, size: int) -> int:
    """Leading zero bits a transaction of ``size`` bytes needs on a network of ``base``."""
    if not 0 <= base <= MAX_DIFFICULTY:
        raise ValueError(f"base difficulty: expected 0..{MAX_DIFFICULTY}, got {base}")
    return min(MAX_DIFFICULTY, base + size_bits(size))


def expected_hashes(difficulty: int) -> int:
    """Mean number of hashes a search needs: 2**difficulty."""
    return 1 << difficulty
