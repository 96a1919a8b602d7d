"""Exact cumulative weights of the most recent transactions, kept on arrival (layer 3).

The window holds the last ``capacity`` transactions in a ring of slots. Each slot has
an ancestor bitset over the slots (a row of a ``capacity x capacity`` bit matrix):
the OR of its parents' rows plus its own bit. When a transaction arrives, every slot
in its row gains one unit of cumulative weight: one numpy add over the window.

Why this is exact inside the window (PROTOCOL §7.5). Every approver of a transaction
arrived after it, so all approvers of a window transaction are in the window too, and
every path between two window transactions runs through window transactions. Hence
``weight[y] = 1 + |{x in window : y in ancestors(x)}|`` is y's true cumulative weight.
Nothing is recomputed per request, nothing is capped, and memory and time per arrival
depend on ``capacity`` only, never on the size of the tangle.

Eviction runs in blocks of 64 slots (one uint64 word of every row), so clearing a
block's column costs one strided write per 64 arrivals instead of one per arrival.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from tangle.errors import UnknownTransaction
from tangle.transaction import TxId

BLOCK = 64
DEFAULT_CAPACITY = 1 << 14


class WeightWindow:
    """The last ``capacity`` transactions: parents, approvers, weights, ancestry."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2 * BLOCK or capacity % BLOCK:
            raise ValueError(
                f"capacity: expected a multiple of {BLOCK} of at least {2 * BLOCK}, got {capacity}"
            )
        self.capacity = capacity
        words = capacity // BLOCK
        self._bits = np.zeros((capacity, words), dtype=np.uint64)
        self.weights = np.zeros(capacity, dtype=np.int64)
        """Cumulative weight per slot (0 for an empty slot)."""
        self.times = np.zeros(capacity, dtype=np.float64)
        """Arrival time per slot, in the caller's clock."""
        self.first_approved = np.full(capacity, np.inf, dtype=np.float64)
        """Arrival time of each slot's first approver (inf while it is a tip)."""
        self.walkable = np.zeros(capacity, dtype=bool)
        """Slots a tip-selection walk may step onto (consistent, not left behind)."""
        self._ids: list[TxId | None] = [None] * capacity
        self._slot: dict[TxId, int] = {}
        self._parents: list[tuple[int, ...]] = [()] * capacity
        self._approvers: list[list[int]] = [[] for _ in range(capacity)]
        self._serial = np.full(capacity, -1, dtype=np.int64)
        """Arrival number per slot: orders slots by age across the ring's wrap."""
        self.arrivals = 0
        """Transactions added since the window was created."""
        self._next = 0  # the slot the next arrival takes

    # -- growth -----------------------------------------------------------------------

    def add(
        self, tx_id: TxId, parents: tuple[TxId, ...], *, time: float, walkable: bool = True
    ) -> list[TxId]:
        """Add a transaction whose parents arrived before it; returns evicted ids.

        Parents that already left the window are fine: they hold no window ancestors.

        Raises:
            ValueError: ``tx_id`` is already in the window.
        """
        if tx_id in self._slot:
            raise ValueError(f"transaction {tx_id.hex()} is already in the window")
        slot = self._next
        evicted = self._evict_block(slot) if slot % BLOCK == 0 else []
        row = self._bits[slot]
        parent_slots = tuple(
            dict.fromkeys(s for p in parents if (s := self._slot.get(p)) is not None)
        )
        for p in parent_slots:
            np.bitwise_or(row, self._bits[p], out=row)
            self._approvers[p].append(slot)
            if self.first_approved[p] == np.inf:
                self.first_approved[p] = time
        row[slot // BLOCK] |= np.uint64(1 << (slot % BLOCK))
        # Every ancestor in the window (itself included) gains one unit of weight.
        self.weights += np.unpackbits(row.view(np.uint8), bitorder="little")
        self._ids[slot] = tx_id
        self._slot[tx_id] = slot
        self._parents[slot] = parent_slots
        self.times[slot] = time
        self.walkable[slot] = walkable
        self._serial[slot] = self.arrivals
        self.arrivals += 1
        self._next = (slot + 1) % self.capacity
        return evicted

    def _evict_block(self, first: int) -> list[TxId]:
        """Empty slots first..first+63 (the oldest, once the ring has wrapped)."""
        block = slice(first, first + BLOCK)
        evicted = [tx for tx in self._ids[block] if tx is not None]
        if not evicted:
            return []
        self._bits[:, first // BLOCK] = 0  # no row may name an evicted slot again
        self._bits[block] = 0
        self.weights[block] = 0
        self.first_approved[block] = np.inf
        self.walkable[block] = False
        self._serial[block] = -1
        for slot in range(first, first + BLOCK):
            tx = self._ids[slot]
            if tx is None:
                continue
            del self._slot[tx]
            self._ids[slot] = None
            # Parents are older, so they left before (and unlinked themselves); children
            # are younger and stay: they forget this parent.
            for child in self._approvers[slot]:
                self._parents[child] = tuple(p for p in self._parents[child] if p != slot)
            self._parents[slot] = ()
            self._approvers[slot] = []
        return evicted

    # -- lookups ----------------------------------------------------------------------

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._slot

    def __len__(self) -> int:
        return len(self._slot)

    def slot(self, tx_id: TxId) -> int:
        try:
            return self._slot[tx_id]
        except KeyError:
            raise UnknownTransaction(tx_id) from None

    def id_at(self, slot: int) -> TxId:
        tx = self._ids[slot]
        if tx is None:
            raise ValueError(f"slot {slot} is empty")
        return tx

    def weight(self, tx_id: TxId) -> int:
        """Cumulative weight: exact while the transaction is in the window."""
        return int(self.weights[self.slot(tx_id)])

    def parents(self, slot: int) -> tuple[int, ...]:
        """Parent slots still in the window."""
        return self._parents[slot]

    def approvers(self, slot: int) -> list[int]:
        """Approver slots, in arrival order. Do not modify."""
        return self._approvers[slot]

    def is_tip(self, slot: int) -> bool:
        return not self._approvers[slot]

    def tips(self) -> list[int]:
        """Occupied slots nobody approves yet, oldest first."""
        return sorted((s for s in self._slot.values() if not self._approvers[s]), key=self.age_key)

    def age_key(self, slot: int) -> int:
        """Sort key: arrival number (smaller is older)."""
        return int(self._serial[slot])

    def ancestors(self, slot: int) -> npt.NDArray[np.bool_]:
        """Boolean mask over slots: the window part of ``slot``'s past cone, itself included."""
        return np.unpackbits(self._bits[slot].view(np.uint8), bitorder="little").astype(bool)

    def ancestor_bits(self, slot: int) -> npt.NDArray[np.uint8]:
        """The packed ancestor bitset of ``slot`` as bytes (bit i of byte j: slot 8j+i)."""
        row: npt.NDArray[np.uint8] = self._bits[slot].view(np.uint8)
        return row

    def in_past_cone(self, ancestor: int, slot: int) -> bool:
        word = int(self._bits[slot, ancestor // BLOCK])
        return bool(word >> (ancestor % BLOCK) & 1)

    def future_cone(self, slot: int) -> list[int]:
        """Window slots that approve ``slot`` directly or indirectly."""
        word, bit = divmod(slot, BLOCK)
        column = (self._bits[:, word] >> np.uint64(bit)) & np.uint64(1)
        found = np.flatnonzero(column)
        return [int(s) for s in found if s != slot]

    def occupied(self) -> Iterator[int]:
        """Occupied slots, oldest first."""
        return iter(sorted(self._slot.values(), key=self.age_key))

    def oldest_time(self) -> float:
        return min((float(self.times[s]) for s in self._slot.values()), default=0.0)
