"""Tip selection on a large tangle: latency, confirmation, update cost, memory.

    python -m benchmarks.tipsel [--transactions 1000000] [--rate 1000] [--json] [--out F]

Builds a tangle of at least a million transactions arriving as a Poisson stream at
``rate`` per second (issuers approve uniformly chosen visible tips, with a network
delay of 50 ms), through the node's weight window (16,384 transactions). At ten
checkpoints it measures tip-pair selection for alpha in {0, 0.01, 0.1, 0.5} and the
default, a confirmation pass (100 walks), and resident memory. At the end it does
the same selection the naive IRI way, recomputing cumulative weights per request
with networkx over the same window, and reports the ratio of the two.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import networkx as nx

from benchmarks import jsonout
from benchmarks.simulate import TipSet, tid
from tangle.confirmation import confidence_pass
from tangle.walk import DEFAULT_ALPHA, McmcSelector, WalkParams
from tangle.window import DEFAULT_CAPACITY, WeightWindow

ALPHAS = (0.0, 0.01, 0.1, 0.5)
DEPTH = 2.0  # seconds, the engine's default


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def naive_select(window: WeightWindow, rng: random.Random, now: float, alpha: float) -> float:
    """IRI's way: per request, cumulative weights of the entry's future cone from scratch."""
    selector = McmcSelector(window, WalkParams(alpha=alpha, depth=DEPTH))
    entry = selector.entry_point(now)
    graph = nx.DiGraph()  # approved -> approver, as read from the database
    for slot in window.occupied():
        graph.add_node(slot)
        for approver in window.approvers(slot):
            graph.add_edge(slot, approver)
    began = time.perf_counter()
    cone = nx.descendants(graph, entry) | {entry}
    weight = {x: 1 + len(nx.descendants(graph, x)) for x in cone}  # recomputed per request
    for _ in range(2):  # trunk and branch
        current = entry
        while True:
            options = [a for a in graph.successors(current) if window.walkable[a]]
            if not options:
                break
            top = max(weight[a] for a in options)
            scores = [pow(2.718281828459045, alpha * (weight[a] - top)) for a in options]
            current = rng.choices(options, scores)[0]
    return (time.perf_counter() - began) * 1000


def run(
    transactions: int, rate: float, delay: float, capacity: int, samples: int
) -> dict[str, Any]:
    rng = random.Random(2026)
    window = WeightWindow(capacity)
    tips = TipSet()
    pending: deque[tuple[float, int, tuple[int, ...]]] = deque()
    window.add(tid(0), (), time=0.0)
    tips.add(0)
    selectors = {a: McmcSelector(window, WalkParams(alpha=a, depth=DEPTH)) for a in ALPHAS}
    selectors.setdefault(DEFAULT_ALPHA, McmcSelector(window, WalkParams(depth=DEPTH)))
    latencies: dict[float, list[float]] = {a: [] for a in selectors}
    confirmation_ms: list[float] = []
    update_s = 0.0
    updates = 0
    rss: dict[str, float] = {}
    checkpoints = {int(transactions * k / 10) for k in range(1, 11)}
    t = 0.0
    began = time.perf_counter()
    for x in range(1, transactions):
        t += rng.expovariate(rate)
        while pending and pending[0][0] <= t - delay:
            issued, y, parents = pending.popleft()
            start = time.perf_counter()
            window.add(tid(y), tuple(tid(p) for p in parents), time=issued)
            update_s += time.perf_counter() - start
            updates += 1
            for p in parents:
                tips.remove(p)
            tips.add(y)
        parents = tuple(rng.sample(tips.items, min(2, len(tips))))
        pending.append((t, x, parents))
        if x + 1 in checkpoints:
            now = t - delay
            for alpha, selector in selectors.items():
                for _ in range(samples):
                    start = time.perf_counter()
                    selector.select(rng, now)
                    latencies[alpha].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            confidence_pass(selectors[DEFAULT_ALPHA], rng, now, 100)
            confirmation_ms.append((time.perf_counter() - start) * 1000)
            rss[str(x + 1)] = round(rss_mb(), 1)
    build_s = time.perf_counter() - began
    now = t - delay
    ours = statistics.median(latencies[DEFAULT_ALPHA])
    naive = [naive_select(window, rng, now, DEFAULT_ALPHA) for _ in range(2)]
    by_alpha = {
        str(a): {
            "p50_ms": round(statistics.median(v), 4),
            "p99_ms": round(percentile(v, 0.99), 4),
            "samples": len(v),
        }
        for a, v in sorted(latencies.items())
    }
    default = latencies[DEFAULT_ALPHA]
    return {
        "transactions": transactions,
        "rate_per_s": rate,
        "delay_s": delay,
        "window": capacity,
        "depth_s": DEPTH,
        "default_alpha": DEFAULT_ALPHA,
        "p50_ms": round(statistics.median(default), 4),
        "p99_ms": round(percentile(default, 0.99), 4),
        "by_alpha": by_alpha,
        "confirmation_pass_ms": round(statistics.median(confirmation_ms), 3),
        "confirmation_pass_walks": 100,
        "update_us": round(update_s / max(1, updates) * 1e6, 2),
        "rss_mb": max(rss.values()),
        "rss_mb_by_transactions": rss,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "naive_ms": round(statistics.median(naive), 1),
        "naive_ratio": round(statistics.median(naive) / ours, 1),
        "build_s": round(build_s, 1),
        "goals": {
            "p50 <= 1 ms": statistics.median(default) <= 1,
            "p99 <= 5 ms": percentile(default, 0.99) <= 5,
            "update <= 50 us": update_s / max(1, updates) * 1e6 <= 50,
            "naive_ratio >= 100": statistics.median(naive) / ours >= 100,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tip selection on a large tangle.")
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="arrivals per second")
    parser.add_argument("--delay", type=float, default=0.05, help="network delay, seconds")
    parser.add_argument("--window", type=int, default=DEFAULT_CAPACITY)
    parser.add_argument(
        "--samples", type=int, default=100, help="selections per alpha per checkpoint"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.transactions < 100 or args.rate <= 0 or args.samples < 1:
        parser.error("--transactions >= 100, --rate > 0 and --samples >= 1 are required")
    result = run(args.transactions, args.rate, args.delay, args.window, args.samples)
    if args.out:
        args.out.write_text(jsonout.dumps(result) + "\n")
    if args.json:
        print(jsonout.dumps(result))
        return 0
    print(
        f"tip selection: {result['transactions']:,} transactions at {args.rate:g}/s, "
        f"window {result['window']:,}, depth {DEPTH} s (built in {result['build_s']} s)"
    )
    for alpha, row in result["by_alpha"].items():
        mark = "  (default)" if float(alpha) == DEFAULT_ALPHA else ""
        print(f"  alpha {alpha:<6} p50 {row['p50_ms']:8.3f} ms   p99 {row['p99_ms']:8.3f} ms{mark}")
    print(f"  confirmation pass, 100 walks   {result['confirmation_pass_ms']:8.2f} ms")
    print(f"  per-arrival update             {result['update_us']:8.2f} us")
    print(f"  RSS by transactions (MB)       {result['rss_mb_by_transactions']}")
    print(
        f"  naive networkx recomputation   {result['naive_ms']:8.1f} ms per pair "
        f"= {result['naive_ratio']:,.0f} x ours"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
