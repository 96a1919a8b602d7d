"""Pruning: which confirmed history a snapshot may replace, and which must stay (layer 3,
pure; PROTOCOL §8.5).

Three steps, each a pure function:

- :func:`prune_plan` is a node's policy: given its engine, when each transaction
  arrived, the clock and :class:`PrunePolicy`, what it keeps whole (recent, pending,
  the tips), what it drops, and the next snapshot, or None when pruning is not worth
  a rebuild yet;
- :func:`plan` chooses what may go given what must be kept, so that no retained
  transaction's verdict changes;
- :func:`split` turns that into the next :class:`~tangle.snapshot.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tangle.engine import Engine
from tangle.snapshot import EntryPoint, Snapshot
from tangle.tangle import Tangle, TxStatus
from tangle.transaction import OutputId, Transaction, TxId

PRUNE_AT_LEAST = 10
"""Prune only when at least 1/10 of the history can go: each pruning rebuilds the tangle
from what is kept (~75 µs per transaction, on the event loop)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrunePolicy:
    """How much history a node keeps (``--prune-age``, ``--max-transactions``)."""

    age: float
    """Seconds of history kept whole."""
    max_transactions: int
    """Held at most: past this, the older half of the history may go sooner."""
    at_least: int = PRUNE_AT_LEAST
    """Prune only when 1/at_least of the history can go."""


@dataclass(frozen=True, slots=True)
class PrunePlan:
    snapshot: Snapshot
    """The snapshot that replaces what goes."""
    retained: list[Transaction]
    """Kept whole, in arrival order: the kept cones, and whatever is recent or pending
    (acknowledged, never dropped; judged again against the snapshot, §8.5)."""
    dropped: list[TxId]
    """Everything else: pruned into the snapshot, or side branches nothing kept approves."""


def prune_plan(
    engine: Engine, arrived: Mapping[TxId, float], now: float, policy: PrunePolicy
) -> PrunePlan | None:
    """What to prune now, or None when nothing (or too little) can go.

    Kept whole: everything younger than ``policy.age`` (fewer when more than
    ``policy.max_transactions`` are held), everything pending, and the tips. Pruned:
    the confirmed history that all of those saw. Dropped: old side branches that are
    conflicting or orphaned and that nothing kept approves.
    """
    tangle, window = engine.tangle, engine.window
    history = tangle.history()
    cutoff = now - policy.age
    if len(tangle) > policy.max_transactions:  # all held, the entry points too
        newest = history[-(policy.max_transactions // 2)]
        cutoff = max(cutoff, arrived.get(newest.id, now))
    if not history or arrived.get(history[0].id, now) >= cutoff:
        return None

    def walkable_pending(tx_id: TxId) -> bool:
        return (
            engine.status(tx_id) is TxStatus.PENDING
            and tx_id in window
            and bool(window.walkable[window.slot(tx_id)])
        )

    keep: list[TxId] = []
    for tx in history:
        status = engine.status(tx.id)
        if status is TxStatus.CONFIRMED:
            if arrived.get(tx.id, now) >= cutoff:
                keep.append(tx.id)
        elif walkable_pending(tx.id):
            keep.append(tx.id)
    keep += [
        t
        for t in tangle.consistent_tips()
        if engine.status(t) is TxStatus.CONFIRMED or walkable_pending(t)
    ]
    confirmed = engine.confirmations()
    pruned, in_cones = plan(tangle, keep, lambda t: t in confirmed)
    if not pruned:
        return None
    gone = {tx.id for tx in pruned}
    cone_ids = {tx.id for tx in in_cones}
    retained = [
        tx
        for tx in history
        if tx.id not in gone
        and (
            tx.id in cone_ids
            or arrived.get(tx.id, now) >= cutoff
            or engine.status(tx.id) is TxStatus.PENDING
        )
    ]
    kept_ids = {tx.id for tx in retained}
    dropped = [tx.id for tx in history if tx.id not in kept_ids]
    if len(dropped) < max(1, len(history) // policy.at_least):
        return None  # a rebuild costs in proportion to what is kept: not worth it yet
    snapshot = split(
        tangle.snapshot,
        pruned,
        retained,
        confirmed=lambda t: t in confirmed,
        below=tangle.dag.in_past_cone,
    )
    return PrunePlan(snapshot, retained, dropped)


def plan(
    tangle: Tangle, keep: Iterable[TxId], confirmed: Callable[[TxId], bool]
) -> tuple[list[Transaction], list[Transaction]]:
    """Which transactions a snapshot may replace, and which must stay: (pruned, retained).

    ``keep`` are the transactions the node must keep whole (recent and pending ones, and
    the tips). Retained are the kept transactions' past cones above the pruned part;
    pruned are the confirmed transactions in the past cone of *every* retained one,
    closed under approval (a fixed point: retaining more can prune less). So each
    retained transaction saw all of the pruned history, judging it against the snapshot
    gives the verdict it got against the history (§8.5), and it sees every entry point.
    Anything else (conflicting or orphaned side branches nobody kept) is dropped.

    The sets are bit masks over the DAG's ancestor bitsets (one AND per retained
    transaction, one pass over the candidates), not sets of ids: pruning a 50,000
    transaction tangle plans in a fraction of the time.
    """
    dag = tangle.dag
    kept = list(dict.fromkeys(keep))
    if not kept:
        return [], tangle.history()
    roots = dag.mask_of(tangle.roots)
    cones = dag.cone_mask(kept) & ~roots

    def closed(candidates: int) -> int:
        """The confirmed candidates whose every ancestor above the roots is one too."""
        good = dag.mask_of(t for t in dag.ids_in(candidates) if confirmed(t))
        return dag.closed_within(good | roots) & ~roots

    pruned = closed(dag.common_mask(kept) & ~roots & ~dag.mask_of(kept))
    while True:
        retained = cones & ~pruned
        narrower = closed(pruned & dag.common_mask(dag.ids_in(retained)))
        if narrower == pruned:
            break
        pruned = narrower
    pruned_ids, retained_ids = set(dag.ids_in(pruned)), set(dag.ids_in(retained))
    history = tangle.history()
    return (
        [tx for tx in history if tx.id in pruned_ids],
        [tx for tx in history if tx.id in retained_ids],
    )


def split(
    base: Snapshot,
    pruned: Sequence[Transaction],
    retained: Sequence[Transaction],
    *,
    confirmed: Callable[[TxId], bool],
    below: Callable[[TxId, TxId], bool],
) -> Snapshot:
    """The snapshot after ``base`` that replaces ``pruned`` (arrival order), below
    ``retained``: see :func:`plan` for how to choose them.

    Outputs created by pruned confirmed transactions, and not spent by one, join the
    snapshot; spends by retained transactions stay with them (so R4 still sees them).
    Entry points are the base's and the pruned transactions that a retained one approves
    (or that nothing approves, so that the DAG never loses its last root); ``below(a, b)``
    says whether ``a`` is in the past cone of ``b`` (the tangle's DAG), which makes the
    frontier: the entry points no other one approves.
    """
    roots = {e.tx.id: e for e in base.entry_points}
    gone = set(roots) | {tx.id for tx in pruned}
    outputs = dict(base.outputs)
    for tx in pruned:
        if tx.id in roots or not confirmed(tx.id):
            continue
        for oid in tx.inputs:
            outputs.pop(oid, None)
        for index, output in enumerate(tx.outputs):
            outputs[OutputId(tx.id, index)] = output
    approved = {p for tx in retained for p in tx.parents if p in gone}
    candidates = [e.tx for e in base.entry_points] + [tx for tx in pruned if tx.id not in roots]
    chosen = [tx for tx in candidates if tx.id in approved]
    if not chosen:  # nothing retained: the newest pruned transaction holds the DAG up
        chosen = [candidates[-1]]
    entries = []
    for tx in chosen:
        old = roots.get(tx.id)
        frontier = (old is None or old.frontier) and not any(
            other.id != tx.id and below(tx.id, other.id) for other in chosen
        )
        confirmed_ = old.confirmed if old is not None else confirmed(tx.id)
        entries.append(EntryPoint(tx, confirmed=confirmed_, frontier=frontier))
    return Snapshot(
        network_id=base.network_id,
        genesis_id=base.genesis_id,
        pruned=base.pruned + sum(1 for tx in pruned if tx.id not in roots),
        entry_points=tuple(entries),
        outputs=tuple(sorted(outputs.items())),
    )
