"""The engine a node runs: tangle, weight window, tip selection, confirmation (layer 3).

It attaches transactions to the :class:`~tangle.tangle.Tangle` (validity, §5–§8) and
mirrors every attached one into the :class:`~tangle.window.WeightWindow`, walkable if
it is consistent, approves nothing left behind, and is not below max depth. From
there it selects tips (MCMC by default, URTS on request), runs confirmation passes,
and answers the statuses of PROTOCOL §9 with promote/reattach advice.

Statuses (§9), decided here:

- *confirmed* once a confirmation pass gives a confidence of at least 2/3; sticky.
  Confirming a transaction confirms its past cone (every tip approving it approves
  its ancestors too);
- *conflicting* when the ledger says so (§8.3), or when a rival spending the same
  output is confirmed (``LOST_CONFLICT``); everything approving a loser is conflicting
  too (``PARENT_CONFLICTING``) and no walk steps onto it again;
- *orphaned* when it leaves the window unconfirmed: no walk can reach it any more.
  It is not final: every tip that approves one of its approvers approves it too, so
  when a transaction whose past cone holds an orphan is confirmed, the orphan is
  confirmed with it (a flood that pushes a pending payment out of the window cannot
  strand it while its approvers confirm). This holds for every orphan the node still
  holds (at most the tangle, which pruning bounds), at a cost per pass of one OR of
  the new confirmations' ancestor bitsets, not a loop over the orphans.

Time is a parameter everywhere (``now``, in seconds for a node), and so is randomness.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tangle.confirmation import CONFIRMATION_THRESHOLD, DEFAULT_WALKS, confidence_pass
from tangle.ledger import ConflictReason, Verdict
from tangle.tangle import AttachResult, Tangle, TxStatus
from tangle.transaction import Transaction, TxId
from tangle.walk import McmcSelector, UrtsParams, UrtsSelector, WalkParams, within_max_depth
from tangle.window import DEFAULT_CAPACITY, WeightWindow


@dataclass(frozen=True, slots=True, kw_only=True)
class LivenessPolicy:
    """When a node should issue an empty transaction to keep the tangle moving (§4.2)."""

    idle_after: float = 1.0
    """Seconds without any new transaction before consolidating."""
    max_tips: int = 8
    """More walkable tips than this: consolidate, whatever the traffic."""
    tip_wait: float = 0.1
    """Seconds a tip that carries value or data may wait for an approver before the node
    approves it itself: a tip does not approve itself, so on a quiet network a payment
    confirms only once something approves it (quiet-network latency)."""
    min_gap: float = 0.25
    """Seconds between two consolidations for the idle and too-many-tips rules (the node
    checks far more often, for ``tip_wait``; without this gap those rules would issue an
    empty transaction at every check)."""

    def due(
        self,
        now: float,
        last_arrival: float,
        tips: int | Callable[[], int],
        waiting: float = 0.0,
        last_issued: float = float("-inf"),
    ) -> bool:
        """``waiting``: how long the oldest pending value-carrying tip has waited;
        ``tips``: the walkable tips, or how to count them (only counted when it matters);
        ``last_issued``: when the node last consolidated."""
        if waiting >= self.tip_wait:
            return True
        if now - last_issued < self.min_gap:
            return False
        if now - last_arrival >= self.idle_after:
            return True
        return (tips() if callable(tips) else tips) > self.max_tips


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineParams:
    capacity: int = DEFAULT_CAPACITY
    """Transactions in the weight window (memory: capacity**2 / 8 bytes)."""
    walk: WalkParams = field(default_factory=WalkParams)
    urts: UrtsParams | None = None
    """Keep a URTS tip pool too (for ``select_tips(mode="urts")``); off by default, since
    its bookkeeping costs every arrival and nodes select tips with the walk."""
    max_parent_age: float = 10.0
    """Seconds a parent may have been approved by others before it makes its approver
    'below max depth' (not walkable)."""
    walks: int = DEFAULT_WALKS
    """Walks per confirmation pass."""
    threshold: float = CONFIRMATION_THRESHOLD
    promote_after: float = 4.0
    """Seconds after which a pending transaction below the threshold should be promoted."""
    liveness: LivenessPolicy = field(default_factory=LivenessPolicy)

    def __post_init__(self) -> None:
        if not 0.5 < self.threshold <= 1:
            raise ValueError(f"threshold: expected in (0.5, 1], got {self.threshold}")


@dataclass(frozen=True, slots=True)
class TxMetadata:
    """What a node reports about a transaction (the API's metadata)."""

    status: TxStatus
    confidence: float
    cumulative_weight: int | None
    """Exact while the transaction is in the window; None once it has left."""
    should_promote: bool
    should_reattach: bool
    conflict_reason: ConflictReason


class Engine:
    """Tangle + weight window + tip selection + confirmation, for one node."""

    def __init__(
        self,
        tangle: Tangle,
        params: EngineParams | None = None,
        now: float = 0.0,
        *,
        confirmed: dict[TxId, float] | None = None,
    ) -> None:
        """``confirmed``: confirmations known from before (a restart, a rebuild after
        pruning); they hold again, and their rivals lose again, as history replays."""
        self.tangle = tangle
        self.params = params or EngineParams()
        self.window = WeightWindow(self.params.capacity)
        self.mcmc = McmcSelector(self.window, self.params.walk, self._compatible)
        self.urts = (
            UrtsSelector(self.window, self.params.urts, self._compatible)
            if self.params.urts is not None
            else None
        )
        self._confirmed: dict[TxId, float] = dict(confirmed or {})
        self._confirmed_slots = np.zeros(self.params.capacity, dtype=bool)
        """Per window slot: already confirmed (a pass then skips it in numpy, not Python)."""
        self._lost: dict[TxId, ConflictReason] = {}
        self._lost_consistent = 0
        """Entries of ``_lost`` the ledger calls consistent (the others it counts itself)."""
        self._orphaned: set[TxId] = set()
        self._orphan_mask = 0
        """The DAG's bit mask of the orphans (bits of ones since confirmed or lost may
        linger: each found is checked against ``_orphaned``)."""
        self._confidence: dict[TxId, float] = {}
        self._arrived: dict[TxId, float] = {}
        self.last_arrival = now
        for root in tangle.roots:  # the genesis, or a snapshot's confirmed entry points
            if tangle.is_consistent(root):
                self._confirmed.setdefault(root, now)
        for tx in tangle:
            self._mirror(tx, now)

    # -- attaching ----------------------------------------------------------------------

    def attach_validated(
        self, tx: Transaction, now: float, verdict: Verdict | None = None
    ) -> AttachResult:
        """Attach ``tx``, which the caller has run through §5 (``validate_stateless``),
        and mirror what got attached into the window; ``verdict`` as in
        :meth:`Tangle.attach_validated`. (There is no validating ``Engine.attach``: the
        name says that validation is the caller's.)"""
        result = self.tangle.attach_validated(tx, verdict)
        for tx_id in result.attached:
            self._mirror(self.tangle.get(tx_id), now)
            if tx_id in self._confirmed:  # replaying a confirmation known from before
                self._resolve_conflicts(tx_id)
        return result

    def _mirror(self, tx: Transaction, now: float) -> None:
        parents = self.tangle.dag.parents(tx.id)  # none for the genesis and entry points
        lost_parent = next((p for p in parents if p in self._lost), None)
        if lost_parent is not None:
            self._lose(tx.id, ConflictReason.PARENT_CONFLICTING)
        elif self._rival_confirmed(tx):  # a double spend of something already final
            self._lose(tx.id, ConflictReason.LOST_CONFLICT)
        walkable = (
            self.tangle.is_consistent(tx.id)
            and tx.id not in self._lost
            and within_max_depth(self.window, parents, now, self.params.max_parent_age)
        )
        for gone in self.window.add(tx.id, parents, time=now, walkable=walkable):
            if self.status(gone) is TxStatus.PENDING:
                self._orphaned.add(gone)
                self._orphan_mask |= self.tangle.dag.mask_of((gone,))
            self._confidence.pop(gone, None)
            self._arrived.pop(gone, None)
        self._arrived[tx.id] = now
        self._confirmed_slots[self.window.slot(tx.id)] = tx.id in self._confirmed
        if self.urts is not None:
            self.urts.on_arrival(tx.id, parents, now)
        self.last_arrival = now

    def _lose(self, tx_id: TxId, reason: ConflictReason) -> None:
        """Mark ``tx_id`` conflicting for ``reason`` unless it already is (first reason
        stays); an orphan that loses is conflicting from now on."""
        if tx_id in self._lost:
            return
        self._lost[tx_id] = reason
        self._orphaned.discard(tx_id)
        if self.tangle.is_consistent(tx_id):
            self._lost_consistent += 1

    def counts(self) -> dict[str, int]:
        """How many held transactions have each status (§9), kept as they change."""
        confirmed = len(self._confirmed)
        conflicting = self.tangle.inconsistent_count + self._lost_consistent
        orphaned = len(self._orphaned)
        return {
            "confirmed": confirmed,
            "conflicting": conflicting,
            "orphaned": orphaned,
            "pending": len(self.tangle) - confirmed - conflicting - orphaned,
        }

    def _rival_confirmed(self, tx: Transaction) -> bool:
        ledger = self.tangle.ledger
        return any(
            spender != tx.id and spender in self._confirmed
            for output_id in tx.inputs
            for spender in ledger.spenders(output_id)
        )

    def _compatible(self, a: TxId, b: TxId) -> bool:
        return self.tangle.can_approve(a, b)

    # -- tip selection --------------------------------------------------------------------

    def select_tips(self, rng: random.Random, now: float, mode: str = "mcmc") -> tuple[TxId, TxId]:
        """Trunk and branch for a new transaction: ``mcmc`` (default) or ``urts``."""
        if mode == "mcmc":
            return self.mcmc.select(rng, now)
        if mode == "urts":
            if self.urts is None:
                raise ValueError("URTS is off: create the engine with EngineParams(urts=...)")
            return self.urts.select(rng, now)
        raise ValueError(f"tip selection: expected 'mcmc' or 'urts', got {mode!r}")

    def consolidation_due(
        self, now: float, waiting: float = 0.0, last_issued: float = float("-inf")
    ) -> bool:
        """Should the node issue an empty transaction now (idle, tips piling up, or a
        payment waiting for an approver for ``waiting`` seconds)? ``last_issued``: when
        it last did (see :attr:`LivenessPolicy.min_gap`)."""
        w = self.window

        def walkable_tips() -> int:
            return sum(1 for s in w.tips() if w.walkable[s])

        return self.params.liveness.due(now, self.last_arrival, walkable_tips, waiting, last_issued)

    # -- confirmation ---------------------------------------------------------------------

    def confirm(self, rng: random.Random, now: float) -> list[TxId]:
        """One confirmation pass; returns the newly confirmed ids, oldest first."""
        w = self.window
        result = confidence_pass(self.mcmc, rng, now, self.params.walks)
        self._confidence = {}
        newly: list[TxId] = []
        waiting = np.flatnonzero((result.confidence > 0) & ~self._confirmed_slots)
        for slot in sorted(waiting.tolist(), key=w.age_key):
            tx_id = w.id_at(slot)
            value = float(result.confidence[slot])
            if value >= self.params.threshold and self.status(tx_id) is TxStatus.PENDING:
                self._confirmed[tx_id] = now
                self._confirmed_slots[slot] = True
                newly.append(tx_id)
            else:
                self._confidence[tx_id] = value
        newly.extend(self._confirm_orphans_below(newly, now))
        for tx_id in newly:
            self._resolve_conflicts(tx_id)
        return newly

    def _confirm_orphans_below(self, confirmed: list[TxId], now: float) -> list[TxId]:
        """Confirm the orphans in the past cones of ``confirmed`` (their confidence is at
        least as high: every tip approving a transaction approves its past cone), oldest
        first; returns them."""
        if not confirmed or not self._orphaned:
            return []
        dag = self.tangle.dag
        found = list(dag.ids_in(dag.cone_mask(confirmed) & self._orphan_mask))
        self._orphan_mask &= ~dag.mask_of(found)
        below = [t for t in found if t in self._orphaned and t not in self._lost]
        for tx_id in below:
            self._orphaned.discard(tx_id)
            self._confirmed[tx_id] = now
        return below

    def _resolve_conflicts(self, winner: TxId) -> None:
        """Every rival of a confirmed transaction loses, and so does what approves it."""
        ledger, w = self.tangle.ledger, self.window
        for output_id in self.tangle.get(winner).inputs:
            for rival in ledger.spenders(output_id):
                if rival == winner or rival in self._lost:
                    continue
                self._lose(rival, ConflictReason.LOST_CONFLICT)
                if rival in w:
                    slot = w.slot(rival)
                    w.walkable[slot] = False
                    for later in w.future_cone(slot):
                        w.walkable[later] = False
                        self._lose(w.id_at(later), ConflictReason.PARENT_CONFLICTING)
                else:  # out of the window (an orphan), but its approvers may be in it
                    for later_id in self.tangle.dag.future_cone(rival):
                        if later_id in w:
                            w.walkable[w.slot(later_id)] = False
                        self._lose(later_id, ConflictReason.PARENT_CONFLICTING)

    # -- statuses (§9) ----------------------------------------------------------------------

    def status(self, tx_id: TxId) -> TxStatus:
        if tx_id in self._confirmed:
            return TxStatus.CONFIRMED
        if tx_id in self._lost or not self.tangle.is_consistent(tx_id):
            return TxStatus.CONFLICTING
        if tx_id in self._orphaned:
            return TxStatus.ORPHANED
        return TxStatus.PENDING

    def conflict_reason(self, tx_id: TxId) -> ConflictReason:
        verdict = self.tangle.verdict(tx_id)
        if not verdict.consistent:
            return verdict.reason
        return self._lost.get(tx_id, ConflictReason.NONE)

    def confidence(self, tx_id: TxId) -> float:
        """The last pass's confidence; 1 for confirmed transactions."""
        if tx_id in self._confirmed:
            return 1.0
        return self._confidence.get(tx_id, 0.0)

    def metadata(self, tx_id: TxId, now: float) -> TxMetadata:
        status = self.status(tx_id)
        reason = self.conflict_reason(tx_id)
        weight = self.window.weight(tx_id) if tx_id in self.window else None
        confidence = self.confidence(tx_id)
        promote = (
            status is TxStatus.PENDING
            and tx_id in self.window
            and now - self._arrived.get(tx_id, now) >= self.params.promote_after
            and confidence < self.params.threshold
        )
        # Reattaching helps when the transaction itself is sound but was left behind,
        # or only its parents were bad; a lost double spend cannot be reissued.
        reattach = status is TxStatus.ORPHANED or (
            status is TxStatus.CONFLICTING
            and reason in (ConflictReason.PARENT_CONFLICTING, ConflictReason.PRUNED)
        )
        return TxMetadata(status, confidence, weight, promote, reattach, reason)

    def adopt_confirmations(self, confirmed: Mapping[TxId, float]) -> None:
        """Confirmations made elsewhere (by the engine this one replaces, while it was
        being built) hold here too, for the transactions this one holds; their rivals
        lose here as they did there."""
        for tx_id, at in confirmed.items():
            if tx_id in self._confirmed or tx_id not in self.tangle:
                continue
            self._confirmed[tx_id] = at
            self._orphaned.discard(tx_id)
            if tx_id in self.window:
                self._confirmed_slots[self.window.slot(tx_id)] = True
            self._resolve_conflicts(tx_id)

    def confirmations(self) -> dict[TxId, float]:
        """Every confirmed transaction and when (a copy)."""
        return dict(self._confirmed)

    @property
    def confirmed_count(self) -> int:
        return len(self._confirmed)
