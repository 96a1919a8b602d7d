"""Peer slots: who may stay connected, kept the way Bitcoin Core keeps them (layer 5, pure).

- One connection per node id (the HELLO proves the id: :mod:`tangle.node.peer`).
- Outbound connections (the configured peers, and learned ones this node dialled) do not
  compete with inbound ones: inbound connections, however many, never take their place.
  The driver bounds them (the configured peers plus ``OUTBOUND_TARGET`` learned ones).
- At most ``max_inbound`` inbound connections, at most ``per_group`` of them from one
  address group (one IPv4 address, one IPv6 /64; loopback is exempt, as every node of a
  devnet shares it).
- When the inbound slots are full, a newcomer evicts one, chosen like Bitcoin Core's
  ``AttemptToEvictConnection``: the ``PROTECT_RELAY`` peers that most recently relayed a
  valid transaction new to this node are protected, and the ``PROTECT_OLDEST`` longest
  connected; of the rest, the largest address group loses a peer: one that never relayed
  anything new if there is one, else its youngest. Nothing left to evict: the newcomer is
  refused.

So a flood of connections with made-up ids can take inbound slots, and while they relay
nothing they are the first to go; it cannot take the outbound slots, nor the slots of
peers that bring new transactions.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_INBOUND = 24
PER_GROUP = 4
PROTECT_RELAY = 4
PROTECT_OLDEST = 4
OUTBOUND_TARGET = 8
"""Learned peers the driver keeps dialled (beside the configured ones)."""

P = TypeVar("P")


def address_group(host: str | None) -> str:
    """The group an address counts in for ``PER_GROUP``: the IPv4 address, the IPv6 /64,
    ``""`` (no cap) for loopback; an address that is not an IP is its own group."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_loopback:
        return ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address_group(str(address.ipv4_mapped))
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class Slot(Generic[P]):
    peer: P
    outbound: bool
    group: str
    since: float
    relayed: float = 0.0
    """When it last relayed a valid transaction new to this node (0: never)."""


class PeerSet(Generic[P]):
    """The connected peers by node id, in their slots (see the module's docstring)."""

    def __init__(self, max_inbound: int = MAX_INBOUND, per_group: int = PER_GROUP) -> None:
        self.max_inbound = max_inbound
        self.per_group = per_group
        self.members: dict[bytes, P] = {}
        self.slots: dict[bytes, Slot[P]] = {}
        self.evicted = 0

    def join(
        self, node_id: bytes, peer: P, now: float, *, outbound: bool, group: str = ""
    ) -> tuple[str | None, P | None]:
        """Register ``peer`` (its HELLO was proven): the reason to refuse it instead, and
        the peer it evicted, to be closed by the driver."""
        if node_id in self.members:
            return "node id: expected a node not yet connected, got one already connected", None
        evicted = None
        if not outbound:
            if group and self._in_group(group) >= self.per_group:
                return (
                    f"address {group}: expected at most {self.per_group} inbound peers from "
                    "one address, got one more",
                    None,
                )
            if self.inbound() >= self.max_inbound:
                victim = self._victim()
                if victim is None:
                    return (
                        f"peers: expected at most {self.max_inbound} inbound, all of them "
                        "protected (inbound slots full)",
                        None,
                    )
                evicted = self.slots.pop(victim).peer
                del self.members[victim]
                self.evicted += 1
        self.members[node_id] = peer
        self.slots[node_id] = Slot(peer, outbound, group, now)
        return None, evicted

    def relayed(self, node_id: bytes, now: float) -> None:
        """The peer sent a valid transaction this node did not have."""
        slot = self.slots.get(node_id)
        if slot is not None:
            slot.relayed = now

    def leave(self, node_id: bytes, peer: P) -> bool:
        """Forget ``peer`` if it is the one registered under ``node_id`` (a refused second
        connection to a node never was); whether it was."""
        if node_id in self.members and self.members[node_id] is peer:
            del self.members[node_id]
            del self.slots[node_id]
            return True
        return False

    def inbound(self) -> int:
        return sum(1 for s in self.slots.values() if not s.outbound)

    def outbound(self) -> int:
        return len(self.slots) - self.inbound()

    def _in_group(self, group: str) -> int:
        return sum(1 for s in self.slots.values() if not s.outbound and s.group == group)

    def _victim(self) -> bytes | None:
        candidates = {k: s for k, s in self.slots.items() if not s.outbound}
        relayers = sorted(
            (k for k, s in candidates.items() if s.relayed), key=lambda k: -candidates[k].relayed
        )
        for key in relayers[:PROTECT_RELAY]:
            del candidates[key]
        oldest = sorted(candidates, key=lambda k: candidates[k].since)
        for key in oldest[:PROTECT_OLDEST]:
            del candidates[key]
        if not candidates:
            return None
        sizes = Counter(s.group for s in candidates.values())
        youngest: dict[str, float] = {}
        for s in candidates.values():
            youngest[s.group] = max(youngest.get(s.group, s.since), s.since)
        # The largest group; of equal ones, the one with the youngest member (so, when
        # every peer has an address of its own, the youngest peer's group).
        group = max(sizes, key=lambda g: (sizes[g], youngest[g]))
        in_group = [(k, s) for k, s in candidates.items() if s.group == group]
        # Never relayed anything new first, then the youngest.
        return max(in_group, key=lambda ks: (ks[1].relayed == 0, ks[1].since))[0]

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[P]:
        return iter(self.members.values())
