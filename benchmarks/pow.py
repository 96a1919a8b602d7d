"""Proof-of-work rates on this machine, all measured in one run on the same inputs.

    python -m benchmarks.pow [--json] [--out FILE] [--seconds S] [--workers N]

Measures the hashlib mid-state loop (the plain way to search in Python), the numpy
batch search at several batch sizes, the process pool on every core, and single
verifications; then the expected and measured time of a payment at the network's base
difficulty. Loop, batch search and pool are measured alternately, best of three each,
so that a noisy machine hurts all alike; the ratios are the figures to compare. The
pool is compared with the best batch size, and with the batch it uses itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pow
from benchmarks import jsonout
from pow import reference
from pow.pool import PoolSearcher, search_for
from pow.vectorized import KERNELS, BatchSearcher, Target, batch_for

BATCHES = (4096, 8192, 16384, 32768, 49152)
"""Batch sizes measured; include ``batch_for(HARD)``, the pool's own."""
HARD = 32
"""Difficulty for rate measurements: the kernel real searches use (one output word), and
a hit is rare enough (one per 4.3 G hashes) not to end a pool measurement early; if one
does, the rate still counts exactly the hashes done."""


def payment_bytes(rng: random.Random) -> bytes:
    """303 bytes without the nonce: the size of a one-input, two-output payment."""
    return rng.randbytes(303 - 8)


def hashlib_loop_hps(prefix: bytes, seconds: float) -> float:
    """Hashes per second of the plain search: copy a mid-state, add the nonce, digest."""
    base = hashlib.blake2s(person=reference.PERSON_NONCE)
    base.update(prefix)
    copy = base.copy
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        for nonce in range(count, count + 20_000):
            h = copy()
            h.update(nonce.to_bytes(8, "big"))
            h.digest()
        count += 20_000
    return count / (time.perf_counter() - began)


def vectorized_hps(prefix: bytes, batch: int, seconds: float) -> float:
    searcher = BatchSearcher(prefix, batch)
    target = Target.for_difficulty(HARD)
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        searcher.find(count, target)
        count += batch
    return count / (time.perf_counter() - began)


def verify_per_s(data: bytes, nonce: int, difficulty: int, seconds: float) -> float:
    verify = reference.verify
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        for _ in range(10_000):
            verify(data, nonce, difficulty)
        count += 10_000
    return count / (time.perf_counter() - began)


def measure(seconds: float, workers: int, solves: int) -> dict[str, Any]:
    rng = random.Random(11)
    data = payment_bytes(rng)
    prefix = reference.pow_prefix(data)
    slice_s = seconds / 6

    loop_runs, batch_runs = [], {b: [] for b in BATCHES}
    pool_runs = []
    with PoolSearcher(workers=workers) as pool:
        pool.search(data, 8)  # the workers are up and have imported numpy
        for round_ in range(3):  # alternate, so drift in machine speed hits every side
            loop_runs.append(hashlib_loop_hps(prefix, slice_s))
            for batch in BATCHES:
                batch_runs[batch].append(vectorized_hps(prefix, batch, slice_s / 2))
            # A fresh payment each time: the workers build their batch state for it,
            # as in a real search.
            pool_data = payment_bytes(random.Random(round_))
            pool_runs.append(pool.search(pool_data, HARD, time_limit=slice_s).rate)
    loop = max(loop_runs)
    by_batch = {b: max(r) for b, r in batch_runs.items()}
    best_batch = max(by_batch, key=lambda b: by_batch[b])
    vectorized = by_batch[best_batch]
    pool_rate = max(pool_runs)

    nonce = pow.solve(data, 12)
    verify = verify_per_s(data, nonce, 12, slice_s)

    base = pow.DEFAULT_BASE_DIFFICULTY
    times = []
    for _ in range(solves):  # the front door a sender uses, on one core
        payment = payment_bytes(rng)
        began = time.perf_counter()
        found = search_for(payment, base)
        times.append(time.perf_counter() - began)
        assert found.nonce is not None
        assert reference.verify(payment, found.nonce, base)
    times.sort()

    expected = {}
    for d in range(8, 26, 2):
        one = pow.estimate(d, vectorized)
        many = pow.estimate(d, pool_rate)
        expected[str(d)] = {
            "single_core_mean_ms": round(one.mean_s * 1000, 3),
            "single_core_median_ms": round(one.median_s * 1000, 3),
            "single_core_p90_ms": round(one.p90_s * 1000, 3),
            "pool_mean_ms": round(many.mean_s * 1000, 3),
        }
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "hashlib_loop_hps": round(loop),
        "vectorized_hps": round(vectorized),
        "vectorized_best_batch": best_batch,
        "vectorized_by_batch_hps": {str(b): round(r) for b, r in by_batch.items()},
        "vectorized_array_ops_per_batch": KERNELS[1].vector_ops,  # type: ignore[attr-defined]
        "ns_per_array_op_per_nonce": round(1e9 / vectorized / KERNELS[1].vector_ops, 4),  # type: ignore[attr-defined]
        "ratio": round(vectorized / loop, 3),
        "pool_workers": workers,
        "pool_hps": round(pool_rate),
        "pool_vs_vectorized": round(pool_rate / vectorized, 3),
        "pool_batch": batch_for(HARD),
        "pool_vs_vectorized_same_batch": round(pool_rate / by_batch[batch_for(HARD)], 3),
        "verify_per_s": round(verify),
        "base_difficulty": base,
        "payment_bytes": len(data) + 8,
        "measured_at_base_ms": {
            "solves": solves,
            "median": round(statistics.median(times) * 1000, 3),
            "p90": round(times[int(0.9 * (len(times) - 1))] * 1000, 3),
            "max": round(times[-1] * 1000, 3),
        },
        "expected_ms": expected,
        "goals": {
            "ratio >= 2.0": vectorized / loop >= 2.0,
            "pool >= 1.8x vectorized": pool_rate / vectorized >= 1.8,
            "verify >= 500000/s": verify >= 500_000,
        },
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"proof of work on {r['machine']['cpus']} cores, Python {r['machine']['python']}")
    print(f"  hashlib mid-state loop      {r['hashlib_loop_hps'] / 1e6:8.2f} MH/s")
    for batch, rate in r["vectorized_by_batch_hps"].items():
        print(f"  numpy batch of {int(batch):>6}      {rate / 1e6:8.2f} MH/s")
    print(f"  ratio (best batch / loop)   {r['ratio']:8.2f}x   (goal 2.0)")
    print(
        f"  process pool, {r['pool_workers']} workers     {r['pool_hps'] / 1e6:8.2f} MH/s"
        f"   {r['pool_vs_vectorized']:.2f}x one core (goal 1.8)"
    )
    print(f"  single verifications        {r['verify_per_s']:>8,}/s   (goal 500,000)")
    m = r["measured_at_base_ms"]
    print(
        f"  a {r['payment_bytes']}-byte payment at base {r['base_difficulty']} bits, one core: "
        f"median {m['median']:.1f} ms, p90 {m['p90']:.1f} ms over {m['solves']} solves"
    )
    print("  expected time by difficulty (one core mean / median / p90; pool mean), ms:")
    for d, e in r["expected_ms"].items():
        print(
            f"    {d:>3} bits  {e['single_core_mean_ms']:>10.2f}"
            f" {e['single_core_median_ms']:>10.2f} {e['single_core_p90_ms']:>10.2f}"
            f"   {e['pool_mean_ms']:>10.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Proof-of-work rates on this machine.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--solves", type=int, default=60, help="payments solved at base")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.workers < 1 or args.solves < 1:
        parser.error("--seconds, --workers and --solves must be positive")
    result = measure(args.seconds, args.workers, args.solves)
    if args.out:
        args.out.write_text(jsonout.dumps(result) + "\n")
    if args.json:
        print(jsonout.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
