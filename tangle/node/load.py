"""Load shedding: refuse a submission early and cheaply when the node is behind (pure).

Above its capacity a node that queues every submission makes everything slower: its
queues grow, gossip falls behind, payments approve parents other nodes have not heard
of, and the work done for them is lost (congestion collapse). So before it reads, decodes
or verifies a submission, the API asks :func:`shed` whether the node is behind, from three
signals the node measures (:class:`Load`):

- **in flight**: submissions between arrival and acknowledgement (being verified,
  waiting for parents, waiting for their commit);
- **commit lag**: seconds the oldest attached but unacknowledged row has waited for
  the disk;
- **gossip backlog**: how full the gossip ingest queue is (transactions from peers not
  yet verified and attached), and how long its oldest item has waited.

At or past a bound (:class:`LoadLimits`) the answer is a :class:`Shed`: the API replies
503 with ``Retry-After`` and a JSON error (code ``overloaded``) naming the signal,
expected against actual; nothing was read, so nothing is lost, and nothing already
acknowledged is ever dropped. ``Retry-After`` grows with how far past its bound the
worst signal is and with how many submissions were refused in the last second against
what the node takes at once (:class:`RefusalRate`), so that clients that honour it, with
jitter, spread their retries out instead of coming back as a herd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_RETRY_AFTER = 30
"""Seconds: the longest ``Retry-After`` the node asks for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadLimits:
    """The bounds past which a node refuses new submissions (``tangle node`` settings)."""

    max_in_flight: int = 1024
    """Submissions being admitted at once (``--max-in-flight``)."""
    max_commit_lag: float = 2.0
    """Seconds the oldest unacknowledged row may wait for its commit."""
    max_backlog: float = 0.5
    """Share of the gossip ingest queue that may be in use."""
    max_ingest_age: float = 2.0
    """Seconds the oldest transaction from a peer may wait for verification."""
    retry_after: float = 1.0
    """Seconds to ask for at the bound; more the further past it."""

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight: expected >= 1, got {self.max_in_flight}")
        for name in ("max_commit_lag", "max_ingest_age", "retry_after"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a finite number of seconds > 0, got {value}")
        if not 0 < self.max_backlog <= 1:
            raise ValueError(f"max_backlog: expected in (0, 1], got {self.max_backlog}")


@dataclass(frozen=True, slots=True)
class Load:
    """How far behind a node is, right now."""

    in_flight: int
    commit_lag: float
    """Seconds."""
    backlog: float
    """0..1: the share of the gossip ingest queue in use."""
    refused_per_s: float = 0.0
    """Submissions refused over the last second (demand the node did not take)."""
    ingest_age: float = 0.0
    """Seconds the oldest transaction in the gossip ingest queue has waited."""


@dataclass(frozen=True, slots=True)
class Shed:
    """Refuse, and ask the client to come back after ``retry_after`` whole seconds."""

    signal: str
    """``in_flight``, ``commit_lag``, ``backlog`` or ``ingest_age``."""
    message: str
    retry_after: int


def shed(load: Load, limits: LoadLimits) -> Shed | None:
    """None when the node can take a submission; else why not and when to retry."""
    signals: list[tuple[str, float, float]] = [  # (signal, bound, actual)
        ("in_flight", limits.max_in_flight, load.in_flight),
        ("commit_lag", limits.max_commit_lag, load.commit_lag),
        ("backlog", limits.max_backlog, load.backlog),
        ("ingest_age", limits.max_ingest_age, load.ingest_age),
    ]
    signal, bound, actual = max(signals, key=lambda s: _ratio(s[2], s[1]))
    ratio = _ratio(actual, bound)
    if ratio < 1:
        return None
    demand = 1 + _ratio(load.refused_per_s, limits.max_in_flight)
    wait = max(1, math.ceil(min(MAX_RETRY_AFTER, limits.retry_after * ratio * demand)))
    what = {
        "in_flight": f"submissions in flight: expected fewer than {bound:g}, got {actual:g}",
        "commit_lag": f"commit lag: expected under {bound:g} s, got {actual:.2f} s",
        "backlog": f"gossip backlog: expected under {bound:.0%} of the queue, got {actual:.0%}",
        "ingest_age": f"gossip backlog: expected a wait under {bound:g} s, "
        f"the oldest waited {actual:.2f} s",
    }[signal]
    return Shed(signal, f"the node is overloaded ({what}): retry after {wait} s", wait)


def _ratio(actual: float, bound: float) -> float:
    """``actual / bound``; a signal that is not a finite number counts as far past it."""
    if not math.isfinite(actual):
        return float(MAX_RETRY_AFTER)
    return max(0.0, actual / bound)


class RefusalRate:
    """Refusals per second over the last whole second: a two-bucket counter, the time
    passed in (seconds, any clock that does not go back)."""

    def __init__(self) -> None:
        self._second = 0
        self._count = 0
        self._previous = 0

    def _roll(self, now: float) -> None:
        second = int(now)
        if second != self._second:
            self._previous = self._count if second == self._second + 1 else 0
            self._second, self._count = second, 0

    def add(self, now: float) -> None:
        self._roll(now)
        self._count += 1

    def rate(self, now: float) -> float:
        self._roll(now)
        return float(max(self._count, self._previous))
