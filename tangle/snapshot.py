"""Snapshots: confirmed history replaced by its ledger state (layer 3, pure; PROTOCOL §8.5).

A :class:`Snapshot` holds the unspent outputs left by the pruned history and its
*entry points*: the pruned transactions that retained ones approve (and the tips of the
pruned part), kept whole so that the DAG above them stays connected. A tangle rooted at
a snapshot treats the entry points as roots and the snapshot's outputs as created in
every past cone (every cone reaches a root). The genesis is the first snapshot: one
entry point, its outputs.

This module is the value and its codec; :mod:`tangle.pruning` plans a snapshot over a
:class:`~tangle.tangle.Tangle` (what may go, what must stay).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tangle.constants import HASH_SIZE, MAX_SUPPLY, OUTPUT_ID_SIZE
from tangle.encoding import Reader, u8, u16, u64
from tangle.errors import EncodingError, InvalidGenesis
from tangle.transaction import Output, OutputId, Transaction, TxId, decode

PERSON_SNAPSHOT = b"tangle/snapshot1"
SNAPSHOT_VERSION = 1
MAX_ENTRY_POINTS = 65_535


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """A pruned transaction that the retained DAG still stands on."""

    tx: Transaction
    confirmed: bool
    """False for a conflicting or orphaned one: whatever approves it cannot be valid."""
    frontier: bool = True
    """Not in the past cone of another entry point: every transaction above the snapshot
    must see each confirmed frontier entry point (§8.5)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Ledger state plus entry points: everything a node needs instead of old history."""

    network_id: int
    genesis_id: TxId
    """The network's first snapshot, which every later one descends from."""
    pruned: int
    """Transactions this snapshot replaces, counted since the genesis (the genesis: 0)."""
    entry_points: tuple[EntryPoint, ...]
    """In arrival order, which is a topological order."""
    outputs: tuple[tuple[OutputId, Output], ...]
    """Unspent outputs of the pruned confirmed history, sorted by output id."""

    def __post_init__(self) -> None:
        if not self.entry_points:
            raise EncodingError("snapshot entry points", "at least one", "none")
        if len(self.entry_points) > MAX_ENTRY_POINTS:
            raise EncodingError(
                "snapshot entry points", f"at most {MAX_ENTRY_POINTS}", str(len(self.entry_points))
            )
        ids = [oid for oid, _ in self.outputs]
        if ids != sorted(set(ids)):
            raise EncodingError(
                "snapshot outputs", "sorted and distinct", "out of order or repeated"
            )
        if self.supply > MAX_SUPPLY:
            raise EncodingError("snapshot supply", f"at most {MAX_SUPPLY}", str(self.supply))

    @classmethod
    def of_genesis(cls, genesis: Transaction) -> Snapshot:
        """§8.5: the genesis is the first snapshot."""
        return cls(
            network_id=genesis.network_id,
            genesis_id=genesis.id,
            pruned=0,
            entry_points=(EntryPoint(genesis, confirmed=True),),
            outputs=tuple(
                (OutputId(genesis.id, index), output)
                for index, output in enumerate(genesis.outputs)
            ),
        )

    @property
    def supply(self) -> int:
        return sum(output.amount for _, output in self.outputs)

    @property
    def roots(self) -> tuple[TxId, ...]:
        return tuple(e.tx.id for e in self.entry_points)

    def encode(self) -> bytes:
        parts = [
            u8(SNAPSHOT_VERSION),
            u64(self.network_id),
            self.genesis_id,
            u64(self.pruned),
            u16(len(self.entry_points)),
        ]
        for entry in self.entry_points:
            raw = entry.tx.encode()
            flags = (1 if entry.confirmed else 0) | (2 if entry.frontier else 0)
            parts += [u8(flags), u16(len(raw)), raw]
        parts.append(u64(len(self.outputs)))
        for oid, output in self.outputs:
            parts += [oid.to_bytes(), output.address, u64(output.amount)]
        return b"".join(parts)

    @property
    def id(self) -> bytes:
        """BLAKE2b-256 of the encoding: what operators compare before trusting one."""
        return hashlib.blake2b(
            self.encode(), digest_size=HASH_SIZE, person=PERSON_SNAPSHOT
        ).digest()


def decode_snapshot(data: bytes) -> Snapshot:
    """Strictly decode a snapshot (every field named on error, no trailing bytes).

    Raises:
        EncodingError: the bytes are not a snapshot.
    """
    r = Reader(data)
    version = r.u8("snapshot version")
    if version != SNAPSHOT_VERSION:
        raise EncodingError("snapshot version", str(SNAPSHOT_VERSION), str(version))
    network_id = r.u64("snapshot network id")
    genesis_id = TxId(r.read("snapshot genesis id", HASH_SIZE))
    pruned = r.u64("snapshot pruned count")
    entries = []
    for n in range(r.u16("snapshot entry point count")):
        flag = r.u8(f"entry_points[{n}] flags")
        if flag > 3:
            raise EncodingError(f"entry_points[{n}] flags", "0 to 3", str(flag))
        raw = r.read(f"entry_points[{n}]", r.u16(f"entry_points[{n}] size"))
        entries.append(EntryPoint(decode(raw), confirmed=bool(flag & 1), frontier=bool(flag & 2)))
    count = r.u64("snapshot output count")
    if count * (OUTPUT_ID_SIZE + HASH_SIZE + 8) > len(data):
        raise EncodingError("snapshot output count", "what the data holds", str(count))
    outputs = []
    for n in range(count):
        oid = OutputId.from_bytes(r.read(f"outputs[{n}] id", OUTPUT_ID_SIZE))
        address = r.read(f"outputs[{n}] address", HASH_SIZE)
        amount = r.u64(f"outputs[{n}] amount")
        if not 1 <= amount <= MAX_SUPPLY:
            raise EncodingError(f"outputs[{n}] amount", f"1 to {MAX_SUPPLY}", str(amount))
        outputs.append((oid, Output(address, amount)))  # type: ignore[arg-type]
    r.done()
    snapshot = Snapshot(network_id, genesis_id, pruned, tuple(entries), tuple(outputs))
    for n, entry in enumerate(snapshot.entry_points):
        if entry.tx.network_id != network_id:
            raise EncodingError(
                f"entry_points[{n}] network", f"{network_id:#x}", f"{entry.tx.network_id:#x}"
            )
    return snapshot


def check_descends(snapshot: Snapshot, genesis: Transaction) -> None:
    """A snapshot of this network, and its value conserved (§8.2).

    Raises:
        InvalidGenesis: another network or genesis, or a supply that does not add up.
    """
    if snapshot.network_id != genesis.network_id or snapshot.genesis_id != genesis.id:
        raise InvalidGenesis(
            f"snapshot: expected network {genesis.network_id:#x} with genesis "
            f"{genesis.id.hex()}, got {snapshot.network_id:#x} with {snapshot.genesis_id.hex()}"
        )
    supply = sum(o.amount for o in genesis.outputs)
    if snapshot.supply != supply:
        raise InvalidGenesis(f"snapshot supply: expected {supply}, got {snapshot.supply}")
