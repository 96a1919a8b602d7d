"""The tangle: DAG + ledger + solidification buffer behind one attach (layer 3, pure).

:meth:`Tangle.attach_validated` is the one way in for a transaction that passed the
stateless rules (§5): it parks a transaction whose parents are not known yet in a
bounded buffer (§7.2), and attaches every transaction that becomes solid, parents
first, computing its past-cone verdict exactly once (§8.3) unless the caller already
has it (:meth:`Tangle.preview`, a node's admission). :meth:`Tangle.attach` runs §5
first, for callers that have not.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum

from tangle.address import Address
from tangle.constants import DEFAULT_MAX_UNSOLID
from tangle.dag import Dag
from tangle.errors import InvalidGenesis, UnknownTransaction
from tangle.ledger import CONSISTENT, ConflictReason, Ledger, Verdict, validate_genesis
from tangle.snapshot import Snapshot
from tangle.transaction import Output, OutputId, Transaction, TxId
from tangle.validation import NetworkParams, validate_stateless

BELOW_SNAPSHOT = Verdict(
    ConflictReason.PRUNED,
    "its past cone misses an entry point of the snapshot: it approves history older than "
    "the snapshot without seeing all of it (§8.5)",
)


class TxStatus(IntEnum):
    """§9: what a node says about an attached transaction."""

    PENDING = 0
    CONFIRMED = 1
    CONFLICTING = 2
    ORPHANED = 3

    @property
    def live(self) -> bool:
        """Confirmed or pending: it may still count (not conflicting, not orphaned)."""
        return self in (TxStatus.PENDING, TxStatus.CONFIRMED)


class Outcome(Enum):
    ATTACHED = "attached"
    """The transaction (and maybe buffered descendants) joined the DAG."""
    BUFFERED = "buffered"
    """A parent is unknown; the transaction waits in the solidification buffer."""
    DUPLICATE = "duplicate"
    """Already attached or already buffered; nothing changed."""
    REFUSED = "refused"
    """Not taken, nothing changed: a node's own rule (it holds as much as it may, and
    prunes before it takes more); the tangle itself never answers this."""


@dataclass(frozen=True, slots=True)
class AttachResult:
    outcome: Outcome
    attached: tuple[TxId, ...] = ()
    """Every transaction this call attached, in order (released descendants included)."""
    missing: tuple[TxId, ...] = ()
    """Parents nobody has seen yet: what to ask peers for."""
    evicted: tuple[TxId, ...] = ()
    """Buffered transactions dropped to keep the buffer within its bound."""


class Tangle:
    """All attached transactions of one network, with their verdicts (§7, §8)."""

    def __init__(
        self,
        base: Transaction | Snapshot,
        params: NetworkParams,
        *,
        max_unsolid: int = DEFAULT_MAX_UNSOLID,
    ) -> None:
        """A tangle starting from a genesis, or from a snapshot of one (§8.5).

        Raises:
            InvalidGenesis: the genesis breaks §8.1, or the snapshot is of another network.
        """
        if isinstance(base, Snapshot):
            snapshot = base
            if snapshot.network_id != params.network_id:
                raise InvalidGenesis(
                    f"snapshot network id: expected {params.network_id}, got {snapshot.network_id}"
                )
        else:
            validate_genesis(base, params.network_id)
            snapshot = Snapshot.of_genesis(base)
        if max_unsolid < 0:
            raise ValueError(f"max_unsolid: expected >= 0, got {max_unsolid}")
        self.params = params
        self.snapshot = snapshot
        self.roots: tuple[TxId, ...] = snapshot.roots
        """The genesis, or the snapshot's entry points: confirmed or final by definition."""
        first = snapshot.entry_points[0].tx
        self._dag = Dag(first.id)
        for entry in snapshot.entry_points[1:]:
            self._dag.add_root(entry.tx.id)
        self._ledger = Ledger(snapshot)
        self._txs: dict[TxId, Transaction] = {e.tx.id: e.tx for e in snapshot.entry_points}
        self._verdicts: dict[TxId, Verdict] = {
            e.tx.id: CONSISTENT
            if e.confirmed
            else Verdict(ConflictReason.PRUNED, "pruned into a snapshot unconfirmed (§8.5)")
            for e in snapshot.entry_points
        }
        self._consistent: dict[TxId, bool] = {e.tx.id: e.confirmed for e in snapshot.entry_points}
        self._boundary = (
            self._dag.mask_of(e.tx.id for e in snapshot.entry_points if e.confirmed and e.frontier)
            if snapshot.pruned
            else 0
        )
        """§8.5: the confirmed frontier entry points every transaction above a snapshot
        must see."""
        self.inconsistent_count = sum(1 for e in snapshot.entry_points if not e.confirmed)
        """Attached transactions whose verdict is inconsistent (§8.3, §8.5)."""
        self._max_unsolid = max_unsolid
        self._unsolid: OrderedDict[TxId, Transaction] = OrderedDict()
        self._waiting: dict[TxId, set[TxId]] = {}

    # -- attaching ------------------------------------------------------------------

    def attach(self, tx: Transaction) -> AttachResult:
        """Validate ``tx`` statelessly, then attach or buffer it.

        Raises:
            InvalidTransaction: a rule of §5 is broken; nothing was changed.
        """
        if tx.id in self._txs or tx.id in self._unsolid:
            return AttachResult(Outcome.DUPLICATE)
        validate_stateless(tx, self.params)
        return self.attach_validated(tx)

    @property
    def genesis_id(self) -> TxId:
        return self.snapshot.genesis_id

    def history(self) -> list[Transaction]:
        """Attached transactions above the roots, in arrival order (what a snapshot splits)."""
        roots = set(self.roots)
        return [tx for tx in self if tx.id not in roots]

    def attach_validated(self, tx: Transaction, verdict: Verdict | None = None) -> AttachResult:
        """Attach or buffer ``tx``, which the caller has already run through §5.

        ``verdict``: what :meth:`preview` said of ``tx`` just now (nothing attached
        since), so that a solid transaction is neither judged nor looked at for missing
        parents twice (preview needs it solid).
        """
        if tx.id in self._txs or tx.id in self._unsolid:
            return AttachResult(Outcome.DUPLICATE)
        if verdict is None:
            absent = [p for p in dict.fromkeys(tx.parents) if p not in self._txs]
            if absent:
                return self._buffer(tx, absent)
        attached = [self._insert(tx, verdict)]
        attached.extend(self._release(tx.id))
        return AttachResult(Outcome.ATTACHED, tuple(attached))

    def missing_parents_of(self, tx: Transaction) -> tuple[TxId, ...]:
        """Parents of ``tx`` that are not attached (empty when ``tx`` is solid)."""
        return tuple(p for p in dict.fromkeys(tx.parents) if p not in self._txs)

    def preview(self, tx: Transaction) -> Verdict:
        """The verdict ``tx`` would get if attached now; changes nothing (§8.3).

        Raises:
            ValueError: ``tx`` is not solid.
        """
        if self.missing_parents_of(tx):
            raise ValueError(f"transaction {tx.id.hex()} is not solid")
        return self._judge(tx)

    def _judge(self, tx: Transaction) -> Verdict:
        if self._boundary and not self._dag.covers(tx.parents, self._boundary):
            return BELOW_SNAPSHOT
        return self._ledger.evaluate(tx, self._dag, self._consistent)

    def _buffer(self, tx: Transaction, absent: list[TxId]) -> AttachResult:
        self._unsolid[tx.id] = tx
        for parent in absent:
            self._waiting.setdefault(parent, set()).add(tx.id)
        evicted: list[TxId] = []
        while len(self._unsolid) > self._max_unsolid:
            old_id, old = self._unsolid.popitem(last=False)
            self._unwait(old)
            evicted.append(old_id)
        missing = tuple(p for p in absent if p not in self._unsolid)
        if tx.id in evicted:  # a zero-sized buffer keeps nothing
            return AttachResult(Outcome.BUFFERED, missing=(), evicted=tuple(evicted))
        return AttachResult(Outcome.BUFFERED, missing=missing, evicted=tuple(evicted))

    def abandon(self, missing: Iterable[TxId]) -> tuple[TxId, ...]:
        """Drop the buffered transactions waiting for the ``missing`` parents, and what
        waited for those, transitively; returns the dropped ids, parents first (§7.2).

        For parents nobody could serve (a node's requests for them ran out): what waits
        for them would otherwise hold its buffer slot until evicted. Ids that are
        attached or buffered themselves are not missing and drop nothing. A dropped
        transaction can be attached again later, like an evicted one.
        """
        dropped: list[TxId] = []
        queue = deque(
            p for p in dict.fromkeys(missing) if p not in self._txs and p not in self._unsolid
        )
        while queue:
            parent = queue.popleft()
            for child_id in sorted(self._waiting.pop(parent, ())):
                child = self._unsolid.pop(child_id, None)
                if child is None:
                    continue
                self._unwait(child)
                dropped.append(child_id)
                queue.append(child_id)
        return tuple(dropped)

    def _unwait(self, tx: Transaction) -> None:
        """Forget that buffered ``tx`` waits for its parents."""
        for parent in tx.parents:
            children = self._waiting.get(parent)
            if children is not None:
                children.discard(tx.id)
                if not children:
                    del self._waiting[parent]

    def _release(self, arrived: TxId) -> Iterator[TxId]:
        """Attach every buffered transaction made solid by ``arrived``, parents first."""
        queue = [arrived]
        while queue:
            parent = queue.pop()
            for child_id in sorted(self._waiting.pop(parent, ())):
                child = self._unsolid.get(child_id)
                if child is None or any(p not in self._txs for p in child.parents):
                    continue
                del self._unsolid[child_id]
                yield self._insert(child)
                queue.append(child_id)

    def _insert(self, tx: Transaction, verdict: Verdict | None = None) -> TxId:
        if verdict is None:
            verdict = self._judge(tx)
        self._dag.add(tx.id, tx.trunk, tx.branch)
        self._ledger.register(tx, self._dag, consistent=verdict.consistent)
        self._txs[tx.id] = tx
        self._verdicts[tx.id] = verdict
        self._consistent[tx.id] = verdict.consistent
        if not verdict.consistent:
            self.inconsistent_count += 1
        return tx.id

    # -- queries --------------------------------------------------------------------

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._txs

    def __len__(self) -> int:
        return len(self._txs)

    def __iter__(self) -> Iterator[Transaction]:
        """Attached transactions in arrival order (parents before approvers)."""
        return (self._txs[tx_id] for tx_id in self._dag)

    @property
    def dag(self) -> Dag:
        return self._dag

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def supply(self) -> int:
        return self._ledger.supply

    def get(self, tx_id: TxId) -> Transaction:
        try:
            return self._txs[tx_id]
        except KeyError:
            raise UnknownTransaction(tx_id) from None

    def verdict(self, tx_id: TxId) -> Verdict:
        try:
            return self._verdicts[tx_id]
        except KeyError:
            raise UnknownTransaction(tx_id) from None

    def is_consistent(self, tx_id: TxId) -> bool:
        return self.verdict(tx_id).consistent

    def buffered(self) -> list[Transaction]:
        """The transactions waiting in the solidification buffer, oldest first."""
        return list(self._unsolid.values())

    def is_buffered(self, tx_id: TxId) -> bool:
        return tx_id in self._unsolid

    @property
    def unsolid_count(self) -> int:
        return len(self._unsolid)

    def missing_parents(self) -> frozenset[TxId]:
        """Parents that buffered transactions wait for and nobody has sent yet."""
        return frozenset(p for p in self._waiting if p not in self._unsolid)

    def tips(self) -> frozenset[TxId]:
        return self._dag.tips()

    def consistent_tips(self) -> list[TxId]:
        """Tips a new transaction may approve (§8.3 R1), sorted by id."""
        return sorted(t for t in self._dag.tips() if self._consistent[t])

    def can_approve(self, trunk: TxId, branch: TxId) -> bool:
        """Would a transaction with no inputs approving these two be consistent?"""
        pair = tuple(dict.fromkeys((trunk, branch)))
        if not all(self.is_consistent(p) for p in pair):
            return False
        if len(pair) == 1:
            return True
        a, b = pair
        if self._dag.in_past_cone(a, b) or self._dag.in_past_cone(b, a):
            return True
        return self._ledger.cone_clash(self._dag, pair) is None

    def unspent_seen_by(self, *roots: TxId) -> dict[OutputId, Output]:
        """§8.2: the unspent outputs as a transaction approving ``roots`` would see them.

        Raises:
            InconsistentCone: the roots' cones conflict.
            UnknownTransaction: a root is not attached.
        """
        cone = self._dag.past_cone_of_all(roots)
        return self._ledger.unspent_in_cone(self._txs[tx_id] for tx_id in cone)

    def balance_seen_by(self, address: Address, *roots: TxId) -> int:
        """Sum of ``address``'s unspent outputs as seen by a transaction approving ``roots``."""
        return sum(o.amount for o in self.unspent_seen_by(*roots).values() if o.address == address)
