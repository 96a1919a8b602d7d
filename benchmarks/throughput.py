"""Capacity, overload and confirmation latency of a devnet of real node processes.

    python -m benchmarks.throughput [--nodes 3] [--duration 15] [--json] [--out F]
    python -m benchmarks.throughput --quick          # a CI-sized smoke run
    python -m benchmarks.throughput --soak 600       # capacity for ten minutes

One run, all figures measured in it (machines of one kind differ 2-3x, so the goals
are ratios):

1. ``sig_verify_ceiling_tps``: Ed25519 verifications per second on one core.
2. **Capacity**: probes of ``--duration`` seconds, each on a fresh devnet, with
   payments prebuilt by :mod:`benchmarks.loadgen` (devices that honour ``Retry-After``
   and rebuild on fresh tips). The offered rate doubles from ``--start`` until a probe
   fails (twice: a rate that fails is run again), then bisects ``--steps`` times. A
   probe *holds* when at least 95% of the
   offered payments are accepted, at least 99% of the accepted confirm, and their p99
   latency is at most 3 s. Latency runs from a payment's first send to its
   confirmation: what a device waits, 503 deferrals, parent waits and rebuilds
   included (``ack_to_confirmation_ms`` leaves out the wait for the acknowledgement).
   ``capacity_tps`` is the highest rate that held; ``confirmed_tps``,
   ``confirmation_rate`` and ``latency_ms`` are that probe's.
3. **Overload**: twice the capacity for the same duration on a fresh devnet:
   ``overload_confirmed_tps``, ``overload_ratio`` (that over the capacity),
   ``overload_latency_ms`` and refusals by reason.
4. ``quiet_network``: single payments, a few seconds apart, on an idle devnet.
5. ``ingest_tps_per_node``: one fresh node fed payments over gossip until every one is
   attached and committed; ``ingest_vs_ceiling`` is that over the ceiling.
6. ``network_efficiency`` = capacity x nodes / (cores x ceiling): how much of the
   machine's signature budget the network turns into confirmed payments.

``--soak SECONDS`` then runs the network at capacity that long and reports the
confirmed rate and each node's RSS per minute, and the longest pause in confirmations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import jsonout
from benchmarks.loadgen import PARAMS, Plan, drive, prebuild, statuses, submit
from tangle import Keypair, OutputId, TxId, build, encode_address
from tangle.node import link, wire
from tangle.node.devnet import Devnet, free_base_port, start_devnet
from tangle.node.genesis import DEV_NETWORK_ID
from tangle.node.wire import Kind
from tangle.signing import verify_signature

HOLD_ACCEPTED = 0.95
HOLD_CONFIRMED = 0.99
HOLD_P99_MS = 3000.0


def verify_ceiling(seconds: float = 1.0) -> float:
    key = Keypair(bytes(32))
    message = b"m" * 32
    signature = key.sign(message)
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        for _ in range(500):
            verify_signature(key.public_key, message, signature)
        count += 500
    return count / (time.perf_counter() - began)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def holds(figures: dict[str, Any]) -> bool:
    """Did the network keep up with this probe (see the module docstring)?"""
    offered = figures["offered_tps"] * figures["duration_s"]
    accepted = figures["accepted_tps"] * figures["duration_s"]
    return bool(
        accepted >= HOLD_ACCEPTED * offered
        and figures["confirmation_rate"] >= HOLD_CONFIRMED
        and figures["latency_ms"]["p99"] <= HOLD_P99_MS
    )


class Bench:
    """Fresh devnets in one temporary directory, one per run."""

    def __init__(self, tmp: Path, nodes: int, devices: int | None, log: Callable[[str], None]):
        self.tmp, self.nodes, self.devices, self.log = tmp, nodes, devices, log
        self._runs = 0

    def devnet(self, nodes: int | None = None) -> Devnet:
        self._runs += 1
        count = nodes or self.nodes
        return start_devnet(self.tmp / f"run{self._runs}", count, free_base_port(count))

    def plan(self, rate: float, duration: float) -> Plan:
        devices = self.devices or max(10, round(rate))  # each pays about once a second
        return prebuild(rate, duration, devices=devices, nodes=self.nodes)

    def load(self, rate: float, duration: float, *, minutes: bool = False) -> dict[str, Any]:
        plan = self.plan(rate, duration)
        devnet = self.devnet()
        pids = [n.process.pid for n in devnet.nodes if n.process is not None]
        try:
            figures = asyncio.run(drive(plan, devnet.apis, pids=pids, minutes=minutes))
        finally:
            devnet.stop()
        figures["duration_s"] = duration
        figures["held"] = holds(figures)
        self.log(
            f"  {rate:7.1f} tx/s offered: {figures['accepted_tps']:7.1f} accepted, "
            f"{figures['confirmed_tps']:7.1f} confirmed ({figures['confirmation_rate']:.3f}), "
            f"p50/p99 {figures['latency_ms']['p50']:.0f}/{figures['latency_ms']['p99']:.0f} ms"
            f" -> {'held' if figures['held'] else 'did not hold'}"
        )
        return figures


def probe(bench: Bench, rate: float, duration: float) -> list[dict[str, Any]]:
    """One probe at ``rate``, and a second one if the first did not hold: a p99 over
    15 s of payments is one slow second away from failing, and a rate is judged on
    its better run, not on noise. The last figures are the verdict's."""
    first = bench.load(rate, duration)
    if first["held"]:
        return [first]
    second = bench.load(rate, duration)
    return [second, first] if not second["held"] else [first, second]


def find_capacity(
    bench: Bench, start: float, ceiling: float, steps: int, duration: float
) -> tuple[float, dict[str, Any] | None, list[dict[str, Any]]]:
    """Double from ``start`` until a probe fails (or ``ceiling``), then bisect."""
    probes: list[dict[str, Any]] = []
    good: tuple[float, dict[str, Any]] | None = None
    bad: float | None = None
    rate = start
    while rate <= ceiling:
        runs = probe(bench, rate, duration)
        probes.extend(runs)
        figures = runs[-1]
        if not figures["held"]:
            bad = rate
            break
        good = (rate, figures)
        rate *= 2
    if good is None:  # even the start rate failed: look below it
        low, high = 0.0, start
    else:
        low, high = good[0], bad if bad is not None else good[0]
    for _ in range(steps if bad is not None else 0):
        rate = round((low + high) / 2, 1)
        if rate < 1 or high - low < 1:
            break
        runs = probe(bench, rate, duration)
        probes.extend(runs)
        figures = runs[-1]
        if figures["held"]:
            low, good = rate, (rate, figures)
        else:
            high = rate
    return (good[0], good[1], probes) if good else (0.0, None, probes)


async def quiet_phase(api: str, count: int, gap: float) -> dict[str, Any]:
    """One payment every ``gap`` seconds from a fresh device, each waited for: the
    latency on an otherwise idle network (built now, against the node's tips)."""
    key = Keypair(random.Random(99).getrandbits(256).to_bytes(32, "big"))
    other = Keypair(bytes(31) + b"\x01")
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{api}/api/v1/faucet",
            json={"address": encode_address(key.address), "amount": "1000000"},
        ) as response:
            funded = TxId(bytes.fromhex((await response.json())["id"]))
        while (await statuses(session, api, [funded]))[funded] != "confirmed":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        coin, value, last = OutputId(funded, 0), 1_000_000, funded
        async with session.get(f"{api}/api/v1/outputs/{coin.hex()}") as response:
            if (await response.json())["address"] != encode_address(key.address):
                coin = OutputId(funded, 1)
        for _ in range(count):
            async with session.get(
                f"{api}/api/v1/tips", params={"approve": last.hex()}
            ) as response:
                tips = await response.json()
            tx = build(
                key,
                PARAMS,
                trunk=TxId(bytes.fromhex(tips["trunk"])),
                branch=TxId(bytes.fromhex(tips["branch"])),
                timestamp=int(time.time() * 1000),
                inputs=[coin],
                payments={other.address: 1, key.address: value - 1},
            )
            sent = time.monotonic()
            status, code, _ = await submit(session, api, tx)
            if status not in (200, 201):
                raise RuntimeError(f"quiet payment refused: {status} {code}")
            while (await statuses(session, api, [tx.id]))[tx.id] != "confirmed":
                if time.monotonic() - sent > 30:
                    break
                await asyncio.sleep(0.02)
            latencies.append((time.monotonic() - sent) * 1000)
            change = next(i for i, o in enumerate(tx.outputs) if o.address == key.address)
            coin, value, last = OutputId(tx.id, change), value - 1, tx.id
            await asyncio.sleep(max(0.0, gap - (time.monotonic() - sent)))
    latencies.sort()
    return {
        "payments": len(latencies),
        "gap_s": gap,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "max": round(latencies[-1], 1),
        },
    }


async def ingest_phase(api: str, plan: Plan, count: int) -> float:
    """Feed a fresh node payments over gossip; transactions per second until the last
    one is attached and committed."""
    raws = [*(f.encode() for f in plan.fundings), *plan.raws[:count]]
    async with aiohttp.ClientSession() as session:
        ws = await link.connect(session, api, Keypair(b"\x42" * 32), DEV_NETWORK_ID)
        began = time.monotonic()
        for raw in raws:
            await ws.send_bytes(wire.encode(Kind.TX, raw))
        while True:
            async with session.get(f"{api}/metrics") as response:
                text = await response.text()
            rows = next(
                int(line.split()[1])
                for line in text.splitlines()
                if line.startswith("tangle_storage_rows_total")
            )
            if rows >= len(raws):
                break
            if time.monotonic() - began > 300:
                raise RuntimeError(f"ingest stalled at {rows} of {len(raws)}")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - began
        await ws.close()
    return len(raws) / elapsed


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.monotonic()
    ceiling = verify_ceiling(0.3 if args.quick else 1.0)
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "cores": cores(),
        "duration_s": args.duration,
        "sig_verify_ceiling_tps": round(ceiling),
        "hold_rule": f">= {HOLD_ACCEPTED:.0%} of offered accepted, >= {HOLD_CONFIRMED:.0%} "
        f"of accepted confirmed, p99 <= {HOLD_P99_MS / 1000:g} s",
        "note": "payments are signed and solved before each timed window, as devices that "
        "prepare payments offline would; a payment refused for an unknown parent is rebuilt "
        "on fresh tips inside the window (counted under 'rebuilt')",
    }
    with tempfile.TemporaryDirectory(prefix="tangle-bench-") as tmp:
        bench = Bench(Path(tmp), args.nodes, args.devices, log)
        log(f"capacity: from {args.start:g} tx/s, doubling, then {args.steps} bisection steps")
        capacity, at_capacity, probes = find_capacity(
            bench, args.start, args.max_rate, args.steps, args.duration
        )
        result["capacity_tps"] = capacity
        result["probes"] = [_brief(p) for p in probes]
        if at_capacity is not None:
            result["confirmed_tps"] = at_capacity["confirmed_tps"]
            result["confirmation_rate"] = at_capacity["confirmation_rate"]
            result["latency_ms"] = at_capacity["latency_ms"]
            result["at_capacity"] = at_capacity
        overload_rate = 2 * (capacity or args.start)
        log(f"overload: {overload_rate:g} tx/s")
        overload = bench.load(overload_rate, args.duration)
        result["overload_offered_tps"] = overload_rate
        result["overload_accepted_tps"] = overload["accepted_tps"]
        result["overload_confirmed_tps"] = overload["confirmed_tps"]
        result["overload_ratio"] = round(overload["confirmed_tps"] / capacity, 3) if capacity else 0
        result["overload_latency_ms"] = overload["latency_ms"]
        result["overload_refused"] = overload["refused"]
        result["overload"] = overload
        if not args.skip_quiet:
            log("quiet network")
            devnet = bench.devnet()
            try:
                count, gap = (2, 1.0) if args.quick else (8, 3.0)
                result["quiet_network"] = asyncio.run(quiet_phase(devnet.apis[0], count, gap))
            finally:
                devnet.stop()
        log(f"ingest: one node fed {args.ingest} payments over gossip")
        plan = bench.plan(max(overload_rate, 50.0), max(2.0, args.ingest / overload_rate + 1))
        single = bench.devnet(1)
        try:
            ingest = asyncio.run(ingest_phase(single.apis[0], plan, args.ingest))
        finally:
            single.stop()
        result["ingest_tps_per_node"] = round(ingest, 1)
        result["ingest_vs_ceiling"] = round(ingest / ceiling, 3)
        result["network_efficiency"] = round(capacity * args.nodes / (cores() * ceiling), 4)
        if args.soak:
            log(f"soak: {capacity:g} tx/s for {args.soak:g} s")
            result["soak"] = _soak(bench.load(capacity or args.start, args.soak, minutes=True))
    result["goals"] = goals(result)
    result["run_s"] = round(time.monotonic() - began, 1)
    return result


def _brief(probe: dict[str, Any]) -> dict[str, Any]:
    keys = ("offered_tps", "accepted_tps", "confirmed_tps", "confirmation_rate", "latency_ms")
    return {k: probe[k] for k in keys} | {"held": probe["held"], "refused": probe["refused"]}


def _soak(figures: dict[str, Any]) -> dict[str, Any]:
    minutes = figures["minutes"]
    first, last = (minutes[0], minutes[-1]) if len(minutes) >= 2 else (None, None)
    flat: dict[str, Any] = {}
    if first and last:
        flat["confirmed_last_vs_first"] = round(
            last["confirmed_tps"] / max(first["confirmed_tps"], 1e-9), 3
        )
        flat["rss_last_vs_first"] = [
            round(b / a, 3) for a, b in zip(first["rss_mb"], last["rss_mb"], strict=True)
        ]
    return {**figures, **flat}


def goals(result: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals, each judged on this run's own figures."""
    met: dict[str, bool] = {
        "overload_ratio >= 0.9": result["overload_ratio"] >= 0.9,
        "overload p99 <= 3 s": result["overload_latency_ms"]["p99"] <= 3000,
        "ingest_vs_ceiling >= 0.5": result["ingest_vs_ceiling"] >= 0.5,
        "network_efficiency >= 0.1": result["network_efficiency"] >= 0.1,
    }
    if "latency_ms" in result:
        met["capacity p50 <= 1 s"] = result["latency_ms"]["p50"] <= 1000
        met["capacity p99 <= 3 s"] = result["latency_ms"]["p99"] <= 3000
    if "quiet_network" in result:
        met["quiet p50 <= 250 ms"] = result["quiet_network"]["latency_ms"]["p50"] <= 250
    if "soak" in result and "rss_last_vs_first" in result["soak"]:
        soak = result["soak"]
        met["soak confirmed flat (10%)"] = abs(soak["confirmed_last_vs_first"] - 1) <= 0.1
        met["soak RSS flat (10%)"] = all(abs(r - 1) <= 0.1 for r in soak["rss_last_vs_first"])
        met["soak no pause > 1 s"] = soak["longest_confirmation_pause_s"] <= 1.0
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Capacity and overload of a loopback devnet.")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, help="seconds per probe (default 15)")
    parser.add_argument("--start", type=float, help="first offered rate (default 100 tx/s)")
    parser.add_argument("--max-rate", type=float, default=20_000.0, help="stop doubling here")
    parser.add_argument("--steps", type=int, help="bisection steps (default 3)")
    parser.add_argument("--devices", type=int, help="payers (default: the rate: one a second)")
    parser.add_argument("--ingest", type=int, help="payments for the ingest phase (10,000)")
    parser.add_argument("--skip-quiet", action="store_true", help="skip the quiet network")
    parser.add_argument("--quick", action="store_true", help="a small, fast smoke run (CI)")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds at capacity after")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3.0 if quick else 15.0)
    args.start = args.start or (20.0 if quick else 100.0)
    args.steps = args.steps if args.steps is not None else (0 if quick else 3)
    args.ingest = args.ingest or (200 if quick else 10_000)
    if quick:
        args.max_rate = min(args.max_rate, 2 * args.start)
    if not 1 <= args.nodes <= 16:
        parser.error(f"--nodes: expected 1..16, got {args.nodes}")
    if args.duration <= 0 or args.start <= 0 or args.max_rate < args.start:
        parser.error("--duration and --start must be positive, and --max-rate >= --start")
    if args.steps < 0 or args.ingest < 1 or args.soak < 0:
        parser.error("--steps >= 0, --ingest >= 1 and --soak >= 0")
    if args.devices is not None and args.devices < 2:
        parser.error(f"--devices: expected at least 2, got {args.devices}")

    def log(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    result = run(args, log)
    text = jsonout.dumps(result)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
