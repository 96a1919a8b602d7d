"""How much work a transaction must prove, and how long that takes (PROTOCOL §6.2, §6.3).

``required = base + size_bits(size)``: every doubling of a transaction beyond 512
bytes adds one bit, so work per byte stays about constant and a big data payload
costs its sender, not the network (the idea of IOTA's TIP-12 score, in whole bits).
A payment with a few inputs and outputs fits in 512 bytes and pays just the base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SIZE_UNIT = 512
"""Bytes covered by the base difficulty; each doubling past this adds one bit."""

MAX_DIFFICULTY = 256

DEFAULT_BASE_DIFFICULTY = 16
"""§6.3: about 10 ms median for a payment on one core of the development machine
(2**16 expected hashes at ~6.5 M/s vectorized; see ``python -m benchmarks.pow``)."""


def size_bits(size: int) -> int:
    """ceil(log2(ceil(size / 512))), and 0 for transactions of 512 bytes or less."""
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


@dataclass(frozen=True, slots=True)
class Estimate:
    """How long a search takes at a given hash rate (the count is geometric)."""

    difficulty: int
    hashes_per_second: float
    mean_s: float
    median_s: float
    p90_s: float
    p99_s: float


def estimate(difficulty: int, hashes_per_second: float) -> Estimate:
    """Expected, median, p90 and p99 search time for ``difficulty`` at a rate.

    Each hash succeeds with probability p = 2**-difficulty, so the number of hashes is
    geometric: mean 1/p and quantile q at ln(1 - q) / ln(1 - p).
    """
    if hashes_per_second <= 0:
        raise ValueError(f"hashes_per_second: expected > 0, got {hashes_per_second}")
    p = 2.0**-difficulty

    def quantile(q: float) -> float:
        if p >= 1:
            return 1.0
        return max(1.0, math.log(1 - q) / math.log1p(-p))

    rate = hashes_per_second
    return Estimate(
        difficulty,
        rate,
        mean_s=(1 / p) / rate,
        median_s=quantile(0.5) / rate,
        p90_s=quantile(0.9) / rate,
        p99_s=quantile(0.99) / rate,
    )
