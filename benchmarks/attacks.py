"""Attacks on tip selection, injected into a running simulation of the model.

- **Parasite chain** (whitepaper §4.1): an attacker builds a chain off a transaction
  that is ``age`` old, in private, with a share of the honest rate, then publishes it at
  once. Each chain transaction approves the previous one and the root. Measured: the
  share of walks that end on the chain.
- **Lazy tips**: transactions that approve old transactions instead of tips (free
  riding). Measured: the share of walks that end on them, against their fair share
  (their number over the number of tips).

Both only add to the window and read it; honest traffic can continue afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.simulate import Simulation, tid
from tangle.transaction import TxId

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
