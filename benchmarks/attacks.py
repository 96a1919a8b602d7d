"""Attacks on tip selection, injected into a running simulation of the model.

- **Parasite chain** (whitepaper §4.1): an attacker builds a chain off a transaction
  that is ``age`` old, in private, with a share of the honest rate, then publishes it at
  once. Each chain transaction approves the previous one and the root. Measured: the
  share of walks that end on the chain.
- **Lazy tips**: transactions that approve old transactions instead of tips (free
  riding). Measured: the share of walks that end on them, against their fair share
  (their number over the number of tips).

Both only add to the window and read it; honest traffic can continue afterwards.

``python -m benchmarks.attacks`` runs the other kind: each scripted attacker of
:mod:`benchmarks.hostile` against a real node A on loopback, while its peer B issues
honest payments; for each, the honest confirmation share and latency at A without the
attack and with it (measured in the same run), A's memory growth, how long SIGTERM
took, and what the attacker saw (``--json``, ``--out FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks import hostile, jsonout
from benchmarks.loadgen import rss_mb
from benchmarks.simulate import Simulation, tid
from tangle import Keypair, NetworkParams, TxId, build, solve
from tangle.node.devnet import LocalNode
from tangle.node.genesis import DEV_BASE_DIFFICULTY, DEV_NETWORK_ID

ATTACKER_IDS = 1 << 40  # far above any honest transaction number


@dataclass(frozen=True, slots=True)
class AttackResult:
    share: float
    """Share of walks ending on the attacker's transactions."""
    fair_share: float
    """Their share if every tip were equally likely."""
    walks: int
    attacker_transactions: int


def _closest_before(sim: Simulation, when: float) -> TxId:
    """The walkable window transaction issued closest to, and not after, ``when``."""
    w = sim.window
    best = None
    for slot in w.occupied():
        if w.walkable[slot] and w.times[slot] <= when:
            best = slot
    if best is None:
        raise ValueError(f"no transaction before time {when} in the window")
    return w.id_at(best)


def _walk_share(sim: Simulation, attacker: set[TxId], walks: int) -> float:
    horizon = sim.t - sim.cfg.delay
    entry = sim.mcmc.entry_point(horizon)
    hits = sum(sim.window.id_at(sim.mcmc.walk(entry, sim.rng)) in attacker for _ in range(walks))
    return hits / walks


def parasite_chain(
    sim: Simulation, *, age: float | None = None, power: float = 0.3, walks: int = 1000
) -> AttackResult:
    """Publish a chain rooted ``age`` back (default: the depth), built at ``power`` x lambda."""
    horizon = sim.t - sim.cfg.delay
    root_time = horizon - (age if age is not None else sim.depth)
    root = _closest_before(sim, root_time)
    length = max(2, int(power * sim.cfg.rate * (horizon - root_time)))
    chain: list[TxId] = []
    previous = root
    for i in range(length):
        tx = tid(ATTACKER_IDS + i)
        sim.add(tx, (previous, root), horizon)  # published now: the node receives it now
        chain.append(tx)
        previous = tx
    tips = len(sim.window.tips())
    return AttackResult(_walk_share(sim, set(chain), walks), 1 / tips, walks, length)


def lazy_tips(
    sim: Simulation, *, count: int = 20, age: float | None = None, walks: int = 1000
) -> AttackResult:
    """Add ``count`` tips that approve one transaction issued ``age`` ago.

    The default, 0.8 x max_parent_age, is a *semi-lazy* tip: old enough to be lazy,
    young enough to pass the max-depth rule, so only the walk's weighting can starve it.
    """
    horizon = sim.t - sim.cfg.delay
    old = _closest_before(sim, horizon - (age if age is not None else 0.8 * sim.max_parent_age))
    lazy = []
    for i in range(count):
        tx = tid(ATTACKER_IDS + 10**6 + i)
        sim.add(tx, (old, old), horizon)
        lazy.append(tx)
    tips = len(sim.window.tips())
    return AttackResult(_walk_share(sim, set(lazy), walks), count / tips, walks, count)


@dataclass(frozen=True, slots=True)
class ConflictResult:
    resolved_after: float | None
    """Time units from the double spend until one side reached the threshold."""
    winner: str | None
    """'a', 'b' or None."""
    both_confirmed: bool
    final: tuple[float, float]
    """Last measured confidence of each side."""


def conflicting_pair(
    sim: Simulation,
    *,
    max_time: float | None = None,
    check_every: int = 25,
    walks: int = 100,
    threshold: float = 2 / 3,
) -> ConflictResult:
    """Two payments spending one output, issued at the same moment on the same tips.

    Honest traffic then continues; no transaction may approve both (its trunk and branch
    must go together, §8.4). Confidence is measured every ``check_every`` arrivals.
    """
    from tangle.confirmation import confidence_pass

    horizon = sim.t - sim.cfg.delay
    trunk, branch = sim.mcmc.select(sim.rng, horizon)
    a, b = tid(ATTACKER_IDS + 2 * 10**6), tid(ATTACKER_IDS + 2 * 10**6 + 1)
    sim.add(a, (trunk, branch), sim.t)
    sim.add(b, (trunk, branch), sim.t)
    w = sim.window
    sa, sb = w.slot(a), w.slot(b)

    def side(tip: TxId) -> tuple[bool, bool]:
        slot = w.slot(tip)
        return w.in_past_cone(sa, slot), w.in_past_cone(sb, slot)

    def compatible(x: TxId, y: TxId) -> bool:
        ax, bx = side(x)
        ay, by = side(y)
        return not ((ax or ay) and (bx or by))

    sim.mcmc.compatible = compatible
    started = sim.t
    limit = max_time if max_time is not None else 20 * sim.depth
    confirmed: set[str] = set()
    resolved = None
    final = (0.0, 0.0)
    while sim.t - started < limit and sim.x < sim.cfg.transactions - 1:
        for _ in range(check_every):
            if sim.x >= sim.cfg.transactions - 1:
                break
            sim.step()
        result = confidence_pass(sim.mcmc, sim.rng, sim.t - sim.cfg.delay, walks)
        final = (float(result.confidence[sa]), float(result.confidence[sb]))
        for name, value in zip("ab", final, strict=True):
            if value >= threshold:
                confirmed.add(name)
        if confirmed and resolved is None:
            resolved = sim.t - started
            break
    winner = next(iter(confirmed)) if len(confirmed) == 1 else None
    return ConflictResult(resolved, winner, len(confirmed) > 1, final)


# -- attacks on a real node ----------------------------------------------------------------


def _attackers(params: NetworkParams) -> dict[str, Callable[[LocalNode], hostile.Attacker]]:
    def slow(a: LocalNode) -> hostile.Attacker:
        return hostile.slow_reader(DEV_NETWORK_ID, [_large(a, params, n) for n in range(4)])

    def spam(a: LocalNode) -> hostile.Attacker:
        async def tips() -> tuple[TxId, TxId]:
            return await asyncio.to_thread(_tips, a)

        return hostile.spam_issuer(params, tips)

    return {
        "connection_flood": lambda a: hostile.connection_flood(200),
        "eclipse": lambda a: hostile.eclipse(DEV_NETWORK_ID, 40),
        "slow_reader": slow,
        "inv_flood": lambda a: hostile.inv_flood(DEV_NETWORK_ID, 2),
        "garbage": lambda a: hostile.garbage(DEV_NETWORK_ID, 4),
        "subscription_flood": lambda a: hostile.subscription_flood(7, 256),
        "spam_issuer": spam,
    }


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return orjson.loads(response.read())


def _tips(node: LocalNode) -> tuple[TxId, TxId]:
    body = _get(f"{node.api}/api/v1/tips")
    return TxId(bytes.fromhex(body["trunk"])), TxId(bytes.fromhex(body["branch"]))


def _large(node: LocalNode, params: NetworkParams, n: int) -> TxId:
    trunk, branch = _tips(node)
    tx = build(
        Keypair((700 + n).to_bytes(32, "big")),
        params,
        trunk=trunk,
        branch=branch,
        timestamp=int(time.time() * 1000),
        payload=bytes([n]) * 4096,
    )
    tx = solve(tx, params)
    request = urllib.request.Request(
        f"{node.api}/api/v1/transactions",
        data=tx.encode(),
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass
    return tx.id


def node_attack(
    name: str, make: Callable[[LocalNode], hostile.Attacker], args: argparse.Namespace
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"tangle-attack-{name}-") as tmp:
        a = LocalNode(Path(tmp) / "a", ("--dev", "--api-port", "0")).start()
        b = None
        try:
            b = LocalNode(
                Path(tmp) / "b",
                ("--dev", "--api-port", "0", "--peer", a.api, "--faucet-index", "1"),
                index=1,
            ).start()
            deadline = time.monotonic() + 20
            while not _get(f"{a.api}/api/v1/peers")["peers"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("node b did not connect to node a")
                time.sleep(0.1)
            rounds = {
                "attack_seconds": args.attack_seconds,
                "payments": args.payments,
                "rate": args.rate,
            }
            baseline, _ = asyncio.run(hostile.under_attack(a.api, b.api, None, **rounds))
            assert a.process is not None
            before = rss_mb(a.process.pid)
            attacked, stats = asyncio.run(hostile.under_attack(a.api, b.api, make(a), **rounds))
            grown = rss_mb(a.process.pid) - before
            began = time.monotonic()
            a.terminate()
            code = a.wait(15)
            stop_s = time.monotonic() - began
        finally:
            for node in (a, b):
                if node is not None:
                    node.kill()
    base, hit = baseline.summary(), attacked.summary()
    return {
        "baseline": base,
        "attacked": hit,
        "p99_ratio": (
            round(hit["p99_ms"] / base["p99_ms"], 2) if hit["p99_ms"] and base["p99_ms"] else None
        ),
        "rss_growth_mb": round(grown, 1),
        "sigterm_s": round(stop_s, 2),
        "exit_code": code,
        "attacker": dict(stats),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted attacks on a real node.")
    parser.add_argument("--payments", type=int, default=40, help="honest payments a round")
    parser.add_argument("--rate", type=float, default=8.0, help="honest payments a second")
    parser.add_argument("--attack-seconds", type=float, default=5.0, help="attack before them")
    parser.add_argument("--only", action="append", help="run only this attack (repeatable)")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    params = NetworkParams(network_id=DEV_NETWORK_ID, base_difficulty=DEV_BASE_DIFFICULTY)
    attackers = _attackers(params)
    unknown = set(args.only or ()) - set(attackers)
    if unknown:
        parser.error(f"--only: expected one of {', '.join(attackers)}, got {sorted(unknown)}")
    results: dict[str, Any] = {}
    for name, make in attackers.items():
        if args.only and name not in args.only:
            continue
        if not args.json:
            print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = r = node_attack(name, make, args)
        if not args.json:
            b, h = r["baseline"], r["attacked"]
            print(
                f"  honest confirmed {b['confirmed_share']} -> {h['confirmed_share']}, "
                f"p50 {b['p50_ms']} -> {h['p50_ms']} ms, p99 {b['p99_ms']} -> {h['p99_ms']} ms "
                f"(x{r['p99_ratio']}), RSS +{r['rss_growth_mb']} MB, SIGTERM {r['sigterm_s']} s",
                file=sys.stderr,
            )
    out = {"benchmark": "attacks", "payments": args.payments, "rate": args.rate, **results}
    text = jsonout.dumps(out)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
