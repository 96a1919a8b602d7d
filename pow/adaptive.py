"""Adaptive difficulty per issuer: a node-local admission rule (PROTOCOL §6.5).

An issuer that sends faster than its allowance must do more work:

    required = base + size_bits(size) + extra
    extra    = min(max_extra, floor(bits_per_tx * max(0, recent - free)))

where ``recent`` counts the transactions this node admitted from the issuer in the
last ``window`` seconds (the idea of GoShimmer's adaptive PoW). With the defaults an
issuer may send 10 transactions per 10 s at the base cost; each 4 more double the work.

Why node-local and not a consensus rule: validity must follow from the DAG alone
(§8.3), but "recent" needs a clock. Issuer timestamps can be forged, and arrival
times differ from node to node, so a consensus version would either be gamed or split
the network. As an admission rule it only decides what this node accepts *fresh*
(API submissions and gossip), while a transaction already approved by others, fetched
to solidify its approvers, is admitted on the network rule alone.

Time is a parameter (``now``), and memory is bounded: at most ``max_issuers`` issuers
are tracked (least recently seen dropped first), each with at most the timestamps
that can still matter.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

from pow.difficulty import MAX_DIFFICULTY, required_difficulty


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    window: float = 10.0
    """Seconds over which an issuer's transactions are counted."""
    free: int = 10
    """Transactions per window at the base cost."""
    bits_per_tx: float = 0.25
    """Extra bits per transaction beyond the allowance (0.25: each 4 double the work)."""
    max_extra: int = 12
    """The most extra bits asked (4096 times the base work)."""
    max_issuers: int = 100_000
    """Issuers tracked at most; memory stays bounded whatever the traffic."""

    def __post_init__(self) -> None:
        if self.window <= 0 or self.free < 0 or self.bits_per_tx < 0 or self.max_extra < 0:
            raise ValueError(f"adaptive policy: expected positive settings, got {self}")
        if self.max_issuers < 1:
            raise ValueError(f"max_issuers: expected >= 1, got {self.max_issuers}")

    @property
    def history(self) -> int:
        """Timestamps worth keeping per issuer: past this, extra is at its maximum."""
        if self.bits_per_tx == 0:
            return self.free
        return self.free + math.ceil(self.max_extra / self.bits_per_tx)


class IssuerRates:
    """Recent admissions per issuer, and the difficulty each issuer must meet now."""

    def __init__(self, policy: AdaptivePolicy | None = None) -> None:
        self.policy = policy or AdaptivePolicy()
        self._seen: OrderedDict[bytes, deque[float]] = OrderedDict()

    def recent(self, issuer: bytes, now: float) -> int:
        """Transactions admitted from ``issuer`` in the window ending at ``now``."""
        times = self._seen.get(issuer)
        if times is None:
            return 0
        horizon = now - self.policy.window
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def extra_bits(self, issuer: bytes, now: float) -> int:
        p = self.policy
        excess = max(0, self.recent(issuer, now) - p.free)
        return min(p.max_extra, math.floor(p.bits_per_tx * excess))

    def required(self, base: int, size: int, issuer: bytes, now: float) -> int:
        """Bits this node asks of a fresh transaction of ``size`` bytes from ``issuer``."""
        return min(MAX_DIFFICULTY, required_difficulty(base, size) + self.extra_bits(issuer, now))

    def record(self, issuer: bytes, now: float) -> None:
        """Count one admitted transaction of ``issuer`` at ``now``."""
        times = self._seen.get(issuer)
        if times is None:
            times = self._seen[issuer] = deque(maxlen=self.policy.history or 1)
            while len(self._seen) > self.policy.max_issuers:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(issuer)
        times.append(now)

    def __len__(self) -> int:
        return len(self._seen)
