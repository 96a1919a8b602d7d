"""Confirmation confidence for every window transaction at once (layer 3, pure).

The confidence of a transaction is the share of N tip-selection walks (default 100)
whose tip approves it, directly or indirectly (whitepaper §1; PROTOCOL §9). A tip does
not approve itself: a transaction nobody has approved yet has confidence 0, however
alone it is, so on a quiet network it waits for the node's consolidation transactions.

One pass runs the N walks from the current entry point and adds each tip's ancestor
bitset into a count per slot, so every window transaction gets its confidence from the
same N walks.

A transaction is confirmed once its confidence reaches the threshold, and stays so.
The threshold is above 1/2: no consistent tip has two conflicting transactions in its
past cone (§8.4), so the walks counted for one and for the other are disjoint, and
both cannot pass 1/2. We use 2/3: with 100 walks the count is binomial, and a true
confidence of 1/2 reaches 67 walks with probability below 0.05%, so a close race is
not settled by sampling noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tangle.walk import McmcSelector

DEFAULT_WALKS = 100
CONFIRMATION_THRESHOLD = 2 / 3


@dataclass(frozen=True, slots=True)
class ConfidencePass:
    confidence: npt.NDArray[np.float64]
    """Per window slot: the share of walks whose tip approves it (0 for empty slots)."""
    tips: tuple[int, ...]
    """The tip slot each walk ended on."""
    entry: int


def confidence_pass(
    selector: McmcSelector, rng: random.Random, now: float, walks: int = DEFAULT_WALKS
) -> ConfidencePass:
    """Run ``walks`` walks from the entry point and count, per slot, the tips approving it."""
    if walks < 1:
        raise ValueError(f"walks: expected >= 1, got {walks}")
    window = selector.window
    entry = selector.entry_point(now)
    ends = tuple(selector.walk(entry, rng) for _ in range(walks))
    counts = np.zeros(window.capacity, dtype=np.int64)
    for tip, times in zip(*np.unique(ends, return_counts=True), strict=True):
        bits = np.unpackbits(window.ancestor_bits(int(tip)), bitorder="little")
        counts += bits.astype(np.int64) * int(times)
        counts[int(tip)] -= int(times)  # a tip does not approve itself
    return ConfidencePass(counts / walks, ends, entry)
