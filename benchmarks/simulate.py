"""The whitepaper's model of the tangle, run with the node's own tip-selection code.

    python -m benchmarks.simulate --tip-selection {uniform,mcmc,urts} --alpha A \\
        --rate LAMBDA --delay H --parents K --transactions N --seed S [--json]

Model (Popov, "The Tangle", §3): transactions arrive as a Poisson process of rate
lambda; one issued at time t chooses its parents from the tangle as it was at t - h
(everything issued up to t - h), and becomes visible to others at t + h. ``uniform``
picks k distinct visible tips uniformly; ``mcmc`` and ``urts`` are the node's
selectors (tangle.walk) over the node's weight window (tangle.window).

Reported (after a burn-in of 30 lambda h transactions, and leaving out the last
30 lambda h, which had no time to settle):

- ``mean_tips``: time average of the number of unapproved transactions; theory for
  uniform selection L0 = k lambda h / (k - 1), i.e. 2 lambda h for k = 2;
- ``first_approval``: time from a transaction's issue to the issue of its first direct
  approver (mean, median, p90); theory ~ h + h / (k - 1), i.e. 2h for k = 2;
- ``approvers_histogram``: number of direct approvers -> number of transactions;
- ``cw_growth_slope``: cumulative weight gained per time unit, measured over 10 h from
  twice the adaptation period t0 = 2.84 h ln L0 (eq. 7) after the reveal: eq. (7) is
  when the number of approving tips nears L0, and the logistic growth of eq. (4) only
  then settles to the linear phase; theory: lambda;
- ``orphan_rate``: share never approved; ``runtime_s``.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from benchmarks import jsonout
from tangle.transaction import TxId
from tangle.walk import (
    DEFAULT_ALPHA,
    McmcSelector,
    UrtsParams,
    UrtsSelector,
    WalkParams,
    within_max_depth,
)
from tangle.window import BLOCK, WeightWindow

W_HALF = 0.3517337112491958  # Lambert W(1/2), whitepaper eq. (6)


class TipSet:
    """The visible tips, with O(1) insert, remove and uniform choice."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.index: dict[int, int] = {}

    def add(self, x: int) -> None:
        if x not in self.index:
            self.index[x] = len(self.items)
            self.items.append(x)

    def remove(self, x: int) -> None:
        i = self.index.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if last != x:
            self.items[i] = last
            self.index[last] = i

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Config:
    tip_selection: str = "mcmc"
    alpha: float = DEFAULT_ALPHA
    rate: float = 50.0
    delay: float = 1.0
    parents: int = 2
    transactions: int = 100_000
    seed: int = 1
    depth: float | None = None
    """MCMC entry depth in time units; default max(10 h, 2 t0): a tip is reachable only
    once it approves the entry point, which takes about the adaptation period t0."""


def tid(n: int) -> TxId:
    return TxId(n.to_bytes(32, "big"))


class Simulation:
    """The model's state, advanced one arrival at a time (tests inject attacks into it)."""

    def __init__(self, cfg: Config) -> None:
        if cfg.tip_selection not in ("uniform", "mcmc", "urts"):
            raise ValueError(
                f"tip selection: expected uniform, mcmc or urts, got {cfg.tip_selection}"
            )
        if cfg.rate <= 0 or cfg.delay < 0 or cfg.parents < 1 or cfg.transactions < 10:
            raise ValueError(f"bad configuration: {cfg}")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        lam, h, k, n = cfg.rate, cfg.delay, cfg.parents, cfg.transactions
        lam_h = lam * h
        self.l0 = k * lam_h / (k - 1) if k > 1 else lam_h
        self.adaptation = (h / W_HALF) * math.log(max(self.l0, 2.0))
        self.depth = cfg.depth if cfg.depth is not None else max(10 * h, 2 * self.adaptation)
        # Below max depth: honest parents are tips, far younger than the adaptation period.
        self.max_parent_age = 5 * h  # honest parents were approved at most ~2h before
        self.below_max_depth = 0
        self.settle = 2 * self.adaptation  # eq. (7): K nears L0; the slope nears lambda later
        self.probe_span = max(10 * h, 10 / lam)
        horizon = max(2 * self.depth, h + self.settle + self.probe_span) + 2 * h
        capacity = max(4 * BLOCK, math.ceil(1.5 * lam * horizon / BLOCK + 2) * BLOCK)
        self.window = WeightWindow(capacity)
        self.mcmc = McmcSelector(self.window, WalkParams(alpha=cfg.alpha, depth=self.depth))
        self.urts = UrtsSelector(
            self.window,
            UrtsParams(
                max_referenced_age=max(h, 1e-9),
                lazy_age=10 * h + 1e-9,
                pool_limit=max(100, int(4 * lam_h)),
            ),
        )
        self.tips = TipSet()
        self.burn_in = min(int(30 * lam_h), n // 4)
        self.tail = min(int(30 * lam_h), n // 4)
        self.issue_time = [0.0] * n
        self.first_approval = [math.inf] * n
        self.approvers = [0] * n
        self.pending: deque[tuple[float, int, tuple[int, ...]]] = deque()
        self.probes: list[tuple[float, int]] = []
        self.next_probe = 0
        self.probe_values: dict[int, list[float]] = {}
        self.every = max(1, (n - self.burn_in - self.tail) // 400)
        self.unapproved = 1
        self.area = 0.0
        self.area_start: float | None = None
        self.last_t = 0.0
        self.t = 0.0
        self.x = 0
        self.began = time.perf_counter()
        # the genesis: transaction 0, issued at time 0, visible at once
        self.window.add(tid(0), (), time=0.0)
        self.tips.add(0)
        self.urts.on_arrival(tid(0), (), 0.0)

    def reveal(self, horizon: float) -> None:
        """Make visible everything issued up to ``horizon``; window times are issue times."""
        while self.pending and self.pending[0][0] <= horizon:
            issued, x, parents = self.pending.popleft()
            self.add(tid(x), tuple(tid(p) for p in parents), issued)
            for p in parents:
                self.tips.remove(p)
            self.tips.add(x)

    def add(self, tx: TxId, parents: tuple[TxId, ...], when: float) -> None:
        """Add to the window as a node does: below max depth means not walkable."""
        ok = within_max_depth(self.window, parents, when, self.max_parent_age)
        self.below_max_depth += not ok
        self.window.add(tx, parents, time=when, walkable=ok)
        self.urts.on_arrival(tx, parents, when)

    def choose(self, horizon: float) -> tuple[int, ...]:
        k = self.cfg.parents
        if self.cfg.tip_selection == "uniform":
            count = min(k, len(self.tips))
            return tuple(self.rng.sample(self.tips.items, count)) if count else (0,)
        selector = self.mcmc if self.cfg.tip_selection == "mcmc" else self.urts
        picks: list[TxId] = []
        for _ in range((k + 1) // 2):
            picks += selector.select(self.rng, horizon)
        return tuple(dict.fromkeys(int.from_bytes(p, "big") for p in picks[:k]))

    def step(self) -> None:
        """One arrival."""
        cfg, h = self.cfg, self.cfg.delay
        self.x += 1
        x = self.x
        self.t += self.rng.expovariate(cfg.rate)
        t = self.t
        self.reveal(t - h)  # the issuer sees the tangle as it was at t - h
        # Weight probes read the window when its horizon (t - h) passes their time.
        while self.next_probe < len(self.probes) and self.probes[self.next_probe][0] <= t - h:
            _, tx = self.probes[self.next_probe]
            if tid(tx) in self.window:
                self.probe_values.setdefault(tx, []).append(self.window.weight(tid(tx)))
            self.next_probe += 1
        chosen = self.choose(t - h)
        self.issue_time[x] = t
        if self.area_start is None and x == self.burn_in:
            self.area_start = t
        if self.area_start is not None:
            self.area += self.unapproved * (t - self.last_t)
        self.last_t = t
        self.unapproved += 1
        for p in chosen:
            if p >= cfg.transactions:  # injected by an attack scenario: not in the stats
                continue
            if self.approvers[p] == 0:
                self.unapproved -= 1
                self.first_approval[p] = t - self.issue_time[p]
            self.approvers[p] += 1
        self.pending.append((t, x, chosen))  # visible to issuers from t + h on
        n = cfg.transactions
        if self.burn_in <= x < n - self.tail and (x - self.burn_in) % self.every == 0:
            start = t + h + self.settle
            # New probes lie past the horizon, so sorting keeps the processed ones first.
            self.probes += [(start, x), (start + self.probe_span, x)]
            self.probes.sort(key=lambda item: item[0])

    def run(self) -> dict[str, Any]:
        while self.x < self.cfg.transactions - 1:
            self.step()
        return self.report()

    def report(self) -> dict[str, Any]:
        cfg = self.cfg
        lam, h, k, n = cfg.rate, cfg.delay, cfg.parents, cfg.transactions
        settled = range(self.burn_in, min(n - self.tail, self.x + 1))
        delays = sorted(
            self.first_approval[x] for x in settled if self.first_approval[x] < math.inf
        )
        histogram: dict[int, int] = {}
        for x in settled:
            histogram[self.approvers[x]] = histogram.get(self.approvers[x], 0) + 1
        slopes = [
            (v[1] - v[0]) / self.probe_span for v in self.probe_values.values() if len(v) == 2
        ]
        span = self.t - (self.area_start or 0.0)
        nan = float("nan")
        return {
            "config": {
                "tip_selection": cfg.tip_selection,
                "alpha": cfg.alpha,
                "rate": lam,
                "delay": h,
                "parents": k,
                "transactions": n,
                "seed": cfg.seed,
                "depth": self.depth if cfg.tip_selection == "mcmc" else None,
                "window": self.window.capacity,
            },
            "mean_tips": self.area / span if span > 0 else nan,
            "first_approval": {
                "mean": statistics.fmean(delays) if delays else nan,
                "median": delays[len(delays) // 2] if delays else nan,
                "p90": delays[int(0.9 * (len(delays) - 1))] if delays else nan,
            },
            "approvers_histogram": dict(sorted(histogram.items())),
            "cw_growth_slope": statistics.fmean(slopes) if slopes else nan,
            "orphan_rate": sum(1 for x in settled if self.approvers[x] == 0) / max(1, len(settled)),
            "runtime_s": time.perf_counter() - self.began,
            "theory": {
                "mean_tips_uniform": self.l0,
                "first_approval_mean_uniform": h + h / (k - 1) if k > 1 else nan,
                "cw_growth_slope": lam,
                "adaptation_period": self.adaptation,
            },
            "samples": {"settled": len(settled), "slopes": len(slopes), "burn_in": self.burn_in},
            "below_max_depth": self.below_max_depth,
        }


def simulate(cfg: Config) -> dict[str, Any]:
    """Run the model for ``cfg.transactions`` arrivals and report its statistics."""
    return Simulation(cfg).run()


SWEEP_ALPHAS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02)


def sweep(rate: float, delay: float, transactions: int, seeds: int) -> list[dict[str, Any]]:
    """Each alpha against honest orphaning and three attacks (see benchmarks.attacks)."""
    from benchmarks.attacks import conflicting_pair, lazy_tips, parasite_chain

    rows = []
    for alpha in SWEEP_ALPHAS:
        orphans, tips, near, deep, lazy, fair, resolve = [], [], [], [], [], [], []
        for seed in range(seeds):
            cfg = Config(alpha=alpha, rate=rate, delay=delay, transactions=transactions, seed=seed)
            report = simulate(cfg)
            orphans.append(report["orphan_rate"])
            tips.append(report["mean_tips"])
            for store, kwargs in ((near, {"age": 3 * delay}), (deep, {})):
                sim = Simulation(replace(cfg, transactions=transactions // 2))
                sim.run()
                store.append(parasite_chain(sim, walks=500, **kwargs).share)
            sim = Simulation(replace(cfg, transactions=transactions // 2))
            sim.run()
            attack = lazy_tips(sim, walks=500)
            lazy.append(attack.share)
            fair.append(attack.fair_share)
            sim = Simulation(replace(cfg, transactions=transactions))
            while sim.x < transactions // 3:
                sim.step()
            outcome = conflicting_pair(sim, max_time=60 * delay)
            assert not outcome.both_confirmed
            resolve.append(outcome.resolved_after if outcome.resolved_after else math.inf)
        rows.append(
            {
                "alpha": alpha,
                "orphan_rate": statistics.fmean(orphans),
                "mean_tips": statistics.fmean(tips),
                "parasite_share_recent_root": statistics.fmean(near),
                "parasite_share_root_at_depth": statistics.fmean(deep),
                "semi_lazy_share": statistics.fmean(lazy),
                "semi_lazy_fair_share": statistics.fmean(fair),
                "conflict_resolved_after_median": statistics.median(resolve),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate the whitepaper's tangle model.")
    parser.add_argument("--tip-selection", choices=["uniform", "mcmc", "urts"], default="mcmc")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--rate", type=float, default=50.0, help="lambda, per time unit")
    parser.add_argument("--delay", type=float, default=1.0, help="h, in time units")
    parser.add_argument("--parents", type=int, default=2, help="k")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--depth", type=float, help="MCMC entry depth (default 10 h)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--sweep", action="store_true", help=f"compare alpha in {SWEEP_ALPHAS} (ignores --alpha)"
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds per alpha in a sweep")
    args = parser.parse_args(argv)
    if args.sweep:
        rows = sweep(args.rate, args.delay, args.transactions, args.seeds)
        if args.json:
            print(jsonout.dumps(rows))
        else:
            print(
                f"alpha sweep: lambda {args.rate}, h {args.delay}, {args.transactions} "
                f"transactions, {args.seeds} seeds"
            )
            print(
                "  alpha   orphans  mean tips  parasite(3h root)  parasite(depth root)"
                "  semi-lazy (fair)   conflict resolved after"
            )
            for r in rows:
                print(
                    f"  {r['alpha']:<6} {r['orphan_rate']:8.5f} {r['mean_tips']:10.1f}"
                    f" {r['parasite_share_recent_root']:18.3f}"
                    f" {r['parasite_share_root_at_depth']:21.3f}"
                    f"  {r['semi_lazy_share']:.3f} ({r['semi_lazy_fair_share']:.3f})"
                    f" {r['conflict_resolved_after_median']:15.1f}"
                )
        return 0
    try:
        result = simulate(
            Config(
                tip_selection=args.tip_selection,
                alpha=args.alpha,
                rate=args.rate,
                delay=args.delay,
                parents=args.parents,
                transactions=args.transactions,
                seed=args.seed,
                depth=args.depth,
            )
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.json:
        print(jsonout.dumps(result))
    else:
        fa = result["first_approval"]
        th = result["theory"]
        print(
            f"{args.tip_selection}, alpha {args.alpha}, lambda {args.rate}, h {args.delay}, "
            f"k {args.parents}, {args.transactions} transactions"
        )
        print(
            f"  mean tips         {result['mean_tips']:10.2f}"
            f"   (uniform theory {th['mean_tips_uniform']:.2f})"
        )
        print(
            f"  first approval    mean {fa['mean']:.3f}  median {fa['median']:.3f}"
            f"  p90 {fa['p90']:.3f}"
            f"   (uniform theory mean {th['first_approval_mean_uniform']:.3f})"
        )
        print(
            f"  cw growth slope   {result['cw_growth_slope']:10.2f}"
            f"   (theory {th['cw_growth_slope']:.2f})"
        )
        print(f"  orphan rate       {result['orphan_rate']:10.5f}")
        print(f"  approvers         {result['approvers_histogram']}")
        print(f"  runtime           {result['runtime_s']:10.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
