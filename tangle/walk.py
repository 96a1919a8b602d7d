"""Tip selection on the weight window: the MCMC walk and URTS (layer 3, pure).

**MCMC** (whitepaper §4.1, eq. 13). A walker starts at an entry point some ``depth``
back and steps from a transaction x to one of its approvers y with probability

    P(x -> y) = exp(alpha * (H_y - H_max)) / sum_z exp(alpha * (H_z - H_max))

over the walkable approvers z of x, H_max being their largest weight (the same as
the paper's exp(-alpha (H_x - H_y)) normalised, and it never overflows). It stops at
a transaction with no walkable approver: a tip. Walkable means consistent (§8.3) and
not left behind by a confirmed conflict; weights are the window's exact, current ones.

The entry point is the heaviest walkable transaction that arrived between ``depth``
and ``2 * depth`` ago (the paper's interval [W, 2W]): old enough that honest tips
approve it, heavy so it sits on the main tangle. Randomness comes in as an argument:
the same ``random.Random`` state reproduces the same walk.

**Below max depth** (IRI's walk validator, Hornet's lazy-tip rule). A transaction is
not walkable if, when it arrived, one of its parents had already been approved by
others for more than ``max_parent_age`` (or had left the window). Honest issuers
approve tips; a parasite chain built in private and published later, or a lazy tip
approving old transactions, is caught by this rule however much weight it carries.
Without it, eq. 13 is weak against a chain whose every transaction approves the root:
the root then has hundreds of approvers, and their sum of exp(alpha H) can beat the
honest approvers whatever alpha (see docs/TIP_SELECTION.md).

**URTS** (IOTA Chrysalis, TIP-3). A pool of non-lazy tips, drawn uniformly. A new
transaction joins the pool unless it is lazy: its youngest parent was already older
than ``lazy_age`` when it arrived. A tip leaves the pool when it has ``max_children``
approvers or has been approved for longer than ``max_referenced_age`` (Chrysalis: 2
and 3 s), or when the pool outgrows ``pool_limit`` (oldest first).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tangle.transaction import TxId
from tangle.window import WeightWindow

DEFAULT_ALPHA = 0.002
"""Chosen by ``python -m benchmarks.simulate --sweep`` at lambda h = 50: no orphans up to
0.002, and conflicts resolve faster than at 0; above 0.005 orphans and tips climb.
Weights grow about lambda per time unit, so alpha scales as ~0.1 / (lambda h); see
docs/TIP_SELECTION.md."""

Compatible = Callable[[TxId, TxId], bool]


def always_compatible(a: TxId, b: TxId) -> bool:
    """For DAGs without a ledger (the simulator): any two tips go together."""
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkParams:
    alpha: float = DEFAULT_ALPHA
    """Weight bias of each step; 0 is the unweighted random walk."""
    depth: float = 2.0
    """How far back the entry point lies, in the window's time unit (seconds for a node)."""
    max_steps: int = 100_000
    """A walk longer than this stops where it is (it cannot happen in a window)."""
    pair_retries: int = 8
    """Second walks tried for a branch consistent with the trunk, before trunk = branch."""

    def __post_init__(self) -> None:
        if self.alpha < 0 or not math.isfinite(self.alpha):
            raise ValueError(f"alpha: expected a finite number >= 0, got {self.alpha}")
        if self.depth < 0:
            raise ValueError(f"depth: expected >= 0, got {self.depth}")


def within_max_depth(
    window: WeightWindow, parents: tuple[TxId, ...], now: float, max_parent_age: float
) -> bool:
    """False if a parent had been approved by others for longer than ``max_parent_age``.

    Approving a tip is always fine, however old it is (on a quiet network the newest
    transaction may be minutes old). A parent outside the window was approved long ago,
    unless the window still holds the whole tangle.
    """
    for parent in parents:
        if parent not in window:
            if window.arrivals > len(window):  # something has left: parent is old
                return False
            continue
        first = float(window.first_approved[window.slot(parent)])
        if now - first > max_parent_age:
            return False
    return True


class McmcSelector:
    """The weighted random walk over a :class:`WeightWindow`."""

    def __init__(
        self,
        window: WeightWindow,
        params: WalkParams | None = None,
        compatible: Compatible = always_compatible,
    ) -> None:
        self.window = window
        self.params = params or WalkParams()
        self.compatible = compatible

    def entry_point(self, now: float) -> int:
        """The heaviest walkable slot that arrived between ``depth`` and ``2*depth`` ago.

        With nothing that old yet, the oldest walkable slot; with nothing walkable at
        all, ``ValueError``.
        """
        w = self.window
        depth = self.params.depth
        walkable = w.walkable
        old_enough = walkable & (w.times <= now - depth)
        candidates = old_enough & (w.times >= now - 2 * depth)
        if not candidates.any():
            if old_enough.any():  # quiet network: the youngest of the old enough
                latest = np.max(w.times[old_enough])
                candidates = old_enough & (w.times == latest)
            elif walkable.any():  # young network: start at its oldest transaction
                candidates = walkable & (w.times == np.min(w.times[walkable]))
            else:
                raise ValueError("no walkable transaction in the window")
        slots = np.flatnonzero(candidates)
        heaviest = slots[w.weights[slots] == w.weights[slots].max()]
        return int(min(heaviest, key=w.age_key))

    def walk(self, start: int, rng: random.Random) -> int:
        """From ``start`` to a tip, one weighted step at a time; returns the tip's slot."""
        w = self.window
        alpha = self.params.alpha
        walkable, weights = w.walkable, w.weights
        current = start
        for _ in range(self.params.max_steps):
            options = [a for a in w.approvers(current) if walkable[a]]
            if not options:
                return current
            if len(options) == 1:
                current = options[0]
                continue
            if alpha == 0:
                current = options[rng.randrange(len(options))]
                continue
            h = [int(weights[a]) for a in options]
            top = max(h)
            cumulative = 0.0
            thresholds = []
            for value in h:
                cumulative += math.exp(alpha * (value - top))
                thresholds.append(cumulative)
            pick = rng.random() * cumulative
            for option, threshold in zip(options, thresholds, strict=True):
                if pick < threshold:
                    current = option
                    break
            else:  # pragma: no cover - rounding at the very top of the range
                current = options[-1]
        return current

    def select(self, rng: random.Random, now: float) -> tuple[TxId, TxId]:
        """Trunk and branch: two walks from one entry point, consistent with each other."""
        w = self.window
        entry = self.entry_point(now)
        trunk = w.id_at(self.walk(entry, rng))
        for _ in range(self.params.pair_retries):
            branch = w.id_at(self.walk(entry, rng))
            if branch == trunk or self.compatible(trunk, branch):
                return trunk, branch
        return trunk, trunk


@dataclass(frozen=True, slots=True, kw_only=True)
class UrtsParams:
    max_children: int = 2
    max_referenced_age: float = 3.0
    lazy_age: float = 15.0
    """A transaction whose youngest parent was older than this on arrival is lazy."""
    pool_limit: int = 100


class UrtsSelector:
    """Uniform random choice from a pool of non-lazy tips (Chrysalis URTS)."""

    def __init__(
        self,
        window: WeightWindow,
        params: UrtsParams | None = None,
        compatible: Compatible = always_compatible,
    ) -> None:
        self.window = window
        self.params = params or UrtsParams()
        self.compatible = compatible
        self._pool: OrderedDict[TxId, float | None] = OrderedDict()
        """Pool tips, oldest first, with the time they were first approved (or None)."""
        self._children: dict[TxId, int] = {}

    def __len__(self) -> int:
        return len(self._pool)

    def on_arrival(self, tx_id: TxId, parents: tuple[TxId, ...], now: float) -> None:
        """Update the pool for a transaction just added to the window."""
        w = self.window
        for parent in dict.fromkeys(parents):
            if parent in self._pool:
                children = self._children.get(parent, 0) + 1
                self._children[parent] = children
                if self._pool[parent] is None:
                    self._pool[parent] = now
                if children >= self.params.max_children:
                    self._drop(parent)
        slot = w.slot(tx_id)
        if not w.walkable[slot]:
            return
        parent_times = [float(w.times[w.slot(p)]) for p in parents if p in w]
        youngest = max(parent_times, default=now)  # parents gone from the window are old
        if parent_times and now - youngest > self.params.lazy_age:
            return  # lazy: it approves only old transactions
        if len(parent_times) < len(tuple(dict.fromkeys(parents))):
            return  # a parent already left the window: lazy too
        self._pool[tx_id] = None
        while len(self._pool) > self.params.pool_limit:
            self._drop(next(iter(self._pool)))

    def _drop(self, tx_id: TxId) -> None:
        self._pool.pop(tx_id, None)
        self._children.pop(tx_id, None)

    def _clean(self, now: float) -> None:
        w = self.window
        stale = [
            t
            for t, referenced in self._pool.items()
            if t not in w
            or not w.walkable[w.slot(t)]
            or (referenced is not None and now - referenced > self.params.max_referenced_age)
        ]
        for t in stale:
            self._drop(t)

    def select(self, rng: random.Random, now: float) -> tuple[TxId, TxId]:
        """Two distinct pool tips that go together (or one, twice, if that is all)."""
        self._clean(now)
        pool = list(self._pool)
        if not pool:
            raise ValueError("the URTS pool is empty: no non-lazy tip to approve")
        trunk = pool[rng.randrange(len(pool))]
        others = [t for t in pool if t != trunk]
        rng.shuffle(others)
        for branch in others[:10]:
            if self.compatible(trunk, branch):
                return trunk, branch
        return trunk, trunk
