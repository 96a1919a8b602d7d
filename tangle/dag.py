"""The approval graph: parents, approvers, tips, height, depth, weights (layer 3, pure).

Exact and simple by design (PROTOCOL §7): this is the reference that faster, windowed
structures are tested against. Each transaction gets a dense index in arrival order
(which is a topological order, since parents always arrive first) and an ancestor
bitset, a Python ``int`` whose bit ``i`` is set when transaction ``i`` lies in its
past cone (itself included). Ancestry queries are then one bit test; the price is
memory that grows with the square of the tangle's size, which the windowed structure
of the tip-selection layer removes.

The interface speaks only in transaction ids, so the insides can be swapped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tangle.constants import OWN_WEIGHT
from tangle.errors import UnknownTransaction
from tangle.transaction import TxId


class Dag:
    """A growing DAG of transaction ids rooted at the genesis, or at the entry points of
    a snapshot (§7, §8.5)."""

    __slots__ = ("_ancestors", "_approvers", "_height", "_ids", "_index", "_parents", "_tips")

    def __init__(self, genesis: TxId) -> None:
        self._index: dict[TxId, int] = {genesis: 0}
        self._ids: list[TxId] = [genesis]
        self._parents: list[tuple[int, ...]] = [()]
        self._approvers: list[list[int]] = [[]]
        self._height: list[int] = [0]
        self._ancestors: list[int] = [1]
        self._tips: set[int] = {0}

    # -- growth -----------------------------------------------------------------

    def add(self, tx_id: TxId, trunk: TxId, branch: TxId) -> None:
        """Attach ``tx_id`` approving ``trunk`` and ``branch`` (which may coincide, §7.1).

        Raises:
            UnknownTransaction: a parent is not in the DAG (the caller must solidify first).
            ValueError: ``tx_id`` is already in the DAG.
        """
        if tx_id in self._index:
            raise ValueError(f"transaction {tx_id.hex()} is already in the DAG")
        parents = tuple(dict.fromkeys((self._idx(trunk), self._idx(branch))))
        i = len(self._ids)
        self._index[tx_id] = i
        self._ids.append(tx_id)
        self._parents.append(parents)
        self._approvers.append([])
        ancestors = 1 << i
        height = 0
        for p in parents:
            self._approvers[p].append(i)
            self._tips.discard(p)
            ancestors |= self._ancestors[p]
            height = max(height, self._height[p] + 1)
        self._ancestors.append(ancestors)
        self._height.append(height)
        self._tips.add(i)

    def add_root(self, tx_id: TxId) -> None:
        """Add ``tx_id`` with no parents: an entry point of a snapshot (§8.5)."""
        if tx_id in self._index:
            raise ValueError(f"transaction {tx_id.hex()} is already in the DAG")
        i = len(self._ids)
        self._index[tx_id] = i
        self._ids.append(tx_id)
        self._parents.append(())
        self._approvers.append([])
        self._ancestors.append(1 << i)
        self._height.append(0)
        self._tips.add(i)

    # -- lookups ------------------------------------------------------------------

    def _idx(self, tx_id: TxId) -> int:
        try:
            return self._index[tx_id]
        except KeyError:
            raise UnknownTransaction(tx_id) from None

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._index

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[TxId]:
        """Ids in arrival order, which is a topological order (parents first)."""
        return iter(self._ids)

    @property
    def genesis(self) -> TxId:
        return self._ids[0]

    def parents(self, tx_id: TxId) -> tuple[TxId, ...]:
        """Distinct direct parents: two, one when trunk equals branch, none for the genesis."""
        return tuple(self._ids[p] for p in self._parents[self._idx(tx_id)])

    def approvers(self, tx_id: TxId) -> tuple[TxId, ...]:
        """Direct approvers in arrival order."""
        return tuple(self._ids[a] for a in self._approvers[self._idx(tx_id)])

    def tips(self) -> frozenset[TxId]:
        """§7.3: transactions nobody approves yet."""
        return frozenset(self._ids[i] for i in self._tips)

    def is_tip(self, tx_id: TxId) -> bool:
        return self._idx(tx_id) in self._tips

    # -- cones --------------------------------------------------------------------

    def in_past_cone(self, ancestor: TxId, tx_id: TxId) -> bool:
        """True iff ``ancestor`` is ``tx_id`` or approved by it directly or indirectly."""
        return bool(self._ancestors[self._idx(tx_id)] >> self._idx(ancestor) & 1)

    def past_cone(self, tx_id: TxId) -> Iterator[TxId]:
        """``tx_id`` and everything it approves, in arrival order."""
        bits = self._ancestors[self._idx(tx_id)]
        return (self._ids[i] for i in _set_bits(bits))

    def past_cone_of_all(self, tx_ids: Iterable[TxId]) -> Iterator[TxId]:
        """The union of the past cones of ``tx_ids``, in arrival order."""
        bits = 0
        for tx_id in tx_ids:
            bits |= self._ancestors[self._idx(tx_id)]
        return (self._ids[i] for i in _set_bits(bits))

    def common_past_cone(self, tx_ids: Iterable[TxId]) -> Iterator[TxId]:
        """What every one of ``tx_ids`` approves (or is), in arrival order; nothing for
        no ids."""
        bits = -1
        for tx_id in tx_ids:
            bits &= self._ancestors[self._idx(tx_id)]
        return (self._ids[i] for i in _set_bits(bits)) if bits != -1 else iter(())

    def cone_mask(self, tx_ids: Iterable[TxId]) -> int:
        """A bit mask naming the union of the past cones of ``tx_ids`` (the ancestor
        bitsets themselves: no copy for one id)."""
        bits = 0
        for tx_id in tx_ids:
            bits |= self._ancestors[self._idx(tx_id)]
        return bits

    def ids_in(self, mask: int) -> Iterator[TxId]:
        """The ids a mask (:meth:`mask_of`, :meth:`cone_mask`) names, in arrival order."""
        return (self._ids[i] for i in _set_bits(mask))

    def common_mask(self, tx_ids: Iterable[TxId]) -> int:
        """A bit mask naming what every one of ``tx_ids`` approves (or is); 0 for none."""
        bits = -1
        for tx_id in tx_ids:
            bits &= self._ancestors[self._idx(tx_id)]
        return bits if bits != -1 else 0

    def closed_within(self, mask: int) -> int:
        """The members of ``mask`` whose parents are all members too, and theirs, down to
        parentless ones: those whose whole past cone lies inside ``mask``."""
        found = bytearray(len(self._ids))
        bitmap = bytearray((len(self._ids) + 7) // 8)
        for i in _set_bits(mask):  # ascending: a topological order, parents first
            if all(found[p] for p in self._parents[i]):
                found[i] = 1
                bitmap[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(bitmap, "little")

    def mask_of(self, tx_ids: Iterable[TxId]) -> int:
        """A bit mask naming ``tx_ids``, for :meth:`covers`, :meth:`ids_in`."""
        indices = [self._idx(tx_id) for tx_id in tx_ids]
        if len(indices) <= SPARSE:  # a few shifts
            mask = 0
            for i in indices:
                mask |= 1 << i
            return mask
        bitmap = bytearray((len(self._ids) + 7) // 8)  # many: one pass, one int
        for i in indices:
            bitmap[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(bitmap, "little")

    def covers(self, tx_ids: Iterable[TxId], mask: int) -> bool:
        """Does the union of the past cones of ``tx_ids`` hold everything in ``mask``?"""
        return self.cone_mask(tx_ids) & mask == mask

    def future_cone(self, tx_id: TxId) -> frozenset[TxId]:
        """Every transaction that approves ``tx_id`` directly or indirectly (not itself)."""
        return frozenset(self._ids[i] for i in self._future(self._idx(tx_id)))

    def _future(self, start: int) -> set[int]:
        seen: set[int] = set()
        stack = list(self._approvers[start])
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self._approvers[i])
        return seen

    # -- metrics (§7.4, §7.5) --------------------------------------------------------

    def height(self, tx_id: TxId) -> int:
        """Length of the longest path from ``tx_id`` down to the genesis (genesis: 0)."""
        return self._height[self._idx(tx_id)]

    def depth(self, tx_id: TxId) -> int:
        """Length of the longest path from ``tx_id`` up to a tip (a tip: 0)."""
        start = self._idx(tx_id)
        cone = self._future(start)
        depth: dict[int, int] = {}
        # Indices are a topological order, so the newest transactions resolve first.
        for i in sorted(cone | {start}, reverse=True):
            depth[i] = max((depth[a] + 1 for a in self._approvers[i]), default=0)
        return depth[start]

    def cumulative_weight(self, tx_id: TxId) -> int:
        """H = own weight + own weights of all direct and indirect approvers, each once."""
        return OWN_WEIGHT * (1 + len(self._future(self._idx(tx_id))))

    def score(self, tx_id: TxId) -> int:
        """Own weight + own weights of everything it approves directly or indirectly."""
        return OWN_WEIGHT * self._ancestors[self._idx(tx_id)].bit_count()


SPARSE = 64
"""Up to this many set bits, :func:`_set_bits` peels them off one by one (each step a
few word operations over the int) instead of writing out all of its digits."""


def _set_bits(bits: int) -> Iterator[int]:
    """Positions of the set bits of ``bits``, lowest first: peeled off one by one when
    they are few, else in one pass over its digits."""
    if bits.bit_count() <= SPARSE:
        while bits:
            low = bits & -bits
            yield low.bit_length() - 1
            bits ^= low
        return
    text = bin(bits)[:1:-1]  # least significant bit first, without the "0b"
    i = text.find("1")
    while i != -1:
        yield i
        i = text.find("1", i + 1)
