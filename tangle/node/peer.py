"""The gossip protocol of one peer connection, without I/O (layer 5, pure).

Like h11 for HTTP, this module holds the rules and :mod:`tangle.node.gossip` moves the
bytes: nothing here touches a socket, an event loop, a clock or a log. The driver passes
each frame it receives and the time (``now``, seconds on a monotonic clock) in, gets
back what the frame means, and sends the frames these objects hand it.

:class:`PeerProtocol` (one per connection) goes through three states::

    AWAITING_HELLO --HELLO: right network, not this node--> OPEN
          |                                                   |
          +------ any rule broken: a Drop, then nothing -> CLOSED <-+

- ``AWAITING_HELLO``: from construction. :meth:`PeerProtocol.start` gives the frame of
  this node's own HELLO, to be sent first. Only a HELLO is acceptable from the peer.
- ``OPEN``: the peer's HELLO was on this node's network and not from this node itself.
  TX, REQUEST, INV and PEERS are accepted; a second HELLO is not.
- ``CLOSED``: a :class:`Drop` was returned (a malformed frame, a rule broken, or the
  driver's :meth:`PeerProtocol.close`). Frames received later mean nothing (``None``).

:meth:`PeerProtocol.receive` turns one frame into at most one event (``None`` when there
is nothing to do), so the hot path allocates no list. What the driver does with each:

- :class:`HelloReceived` ``(node_id, api)``: register the peer in the :class:`PeerSet`
  (which refuses a second connection to one node and more than ``MAX_PEERS``; a refusal
  is a reason to drop it), then send :meth:`~PeerProtocol.inv` of its tips (the sync on
  connect) and :meth:`~PeerProtocol.peers` of the URLs it knows.
- :class:`TransactionReceived` ``(tx)``: decoded, not yet validated. Unless the node
  already knows it (or has it queued), validate it (§5) and attach it; if it breaks a
  rule, :meth:`~PeerProtocol.invalid_transaction` gives the Drop.
- :class:`RequestReceived` ``(ids)``: send :meth:`~PeerProtocol.answer` (TX frames of the
  ids the node holds; others are ignored).
- :class:`InventoryReceived` ``(ids)``: send :meth:`~PeerProtocol.request` of what the
  :class:`RequestTracker` says to ask for (ids not known, not asked too often).
- :class:`PeersReceived` ``(urls)``: remember them.
- :class:`Drop` ``(reason)``: log the reason, close the connection, leave the PeerSet.

A frame beyond the peer's rate (a token bucket of ``RATE`` frames per second, ``BURST``
deep, refilled by ``now``) is ignored without an event and counted in
``PeerProtocol.throttled``.

Shared by all connections of a node: :class:`PeerSet` (who is connected) and
:class:`RequestTracker` (which ids were asked for, when, how often: a missing id is
asked for at most ``MAX_ATTEMPTS`` times, and housekeeping retries one only
``RETRY_AFTER`` seconds after the last attempt).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from tangle.errors import EncodingError
from tangle.node import wire
from tangle.node.errors import ProtocolError
from tangle.node.wire import Kind
from tangle.transaction import Transaction, TxId, decode

MAX_PEERS = 16
MAX_ATTEMPTS = 5
"""Requests for one missing id before giving up on it."""
RETRY_AFTER = 1.0
"""Seconds between two housekeeping requests for the same missing id."""
INV_EVERY = 3.0
"""Seconds between two INV of the tips to every peer (heals lost frames)."""
RATE = 20_000.0
"""Frames per second a peer may send (token bucket); beyond that its frames are dropped."""
BURST = 40_000.0
MAX_REQUESTED = 100_000
"""Request bookkeeping entries beyond which those older than ``FORGET_AFTER`` go."""
FORGET_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class LocalInfo:
    """What this node says of itself in its HELLO."""

    network_id: int
    node_id: bytes
    api: str


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HelloReceived:
    node_id: bytes
    api: str


@dataclass(frozen=True, slots=True)
class TransactionReceived:
    tx: Transaction


@dataclass(frozen=True, slots=True)
class RequestReceived:
    ids: list[TxId]


@dataclass(frozen=True, slots=True)
class InventoryReceived:
    ids: list[TxId]


@dataclass(frozen=True, slots=True)
class PeersReceived:
    urls: list[str]


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection; ``reason`` says what was expected and what came."""

    reason: str


Event = (
    HelloReceived | TransactionReceived | RequestReceived | InventoryReceived | PeersReceived | Drop
)


class State(Enum):
    AWAITING_HELLO = "awaiting HELLO"
    OPEN = "open"
    CLOSED = "closed"


# -- one connection --------------------------------------------------------------------------


class PeerProtocol:
    """The state machine of one connection (see the module's docstring)."""

    __slots__ = (
        "api",
        "burst",
        "local",
        "node_id",
        "rate",
        "refilled",
        "state",
        "throttled",
        "tokens",
    )

    def __init__(self, local: LocalInfo, *, rate: float = RATE, burst: float = BURST) -> None:
        self.local = local
        self.state = State.AWAITING_HELLO
        self.node_id = b""
        """The peer's node id, once its HELLO was accepted."""
        self.api = ""
        """The API URL the peer announced in its HELLO (may be empty)."""
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.refilled = 0.0
        self.throttled = 0
        """Frames ignored because the peer sent faster than ``rate``."""

    def start(self, now: float) -> list[bytes]:
        """The frames to send first: this node's HELLO."""
        self.refilled = now
        local = self.local
        return [wire.hello(local.network_id, local.node_id, local.api)]

    def receive(self, frame: bytes, now: float) -> Event | None:
        """What one frame from the peer means; ``None``: nothing to do (over the rate
        limit, or the connection is already closed)."""
        if self.state is State.CLOSED:
            return None
        tokens = self.tokens + (now - self.refilled) * self.rate
        self.tokens = tokens if tokens < self.burst else self.burst
        self.refilled = now
        if self.tokens < 1:
            self.throttled += 1
            return None
        self.tokens -= 1
        try:
            kind, payload = wire.decode(frame)
            if self.state is not State.OPEN and kind is not Kind.HELLO:
                raise ProtocolError(f"expected HELLO first, got {kind.name}")
            if kind is Kind.TX:
                try:
                    return TransactionReceived(decode(payload))
                except EncodingError as exc:
                    raise ProtocolError(f"TX does not decode: {exc}") from None
            if kind is Kind.INV:
                return InventoryReceived(wire.read_ids(payload))
            if kind is Kind.REQUEST:
                return RequestReceived(wire.read_ids(payload))
            if kind is Kind.HELLO:
                return self._hello(wire.read_hello(payload))
            return PeersReceived(wire.read_peers(payload))
        except ProtocolError as exc:
            return self.close(str(exc))

    def _hello(self, hello: wire.Hello) -> HelloReceived:
        if self.state is State.OPEN:
            raise ProtocolError("expected one HELLO, got a second HELLO")
        local = self.local
        if hello.network_id != local.network_id:
            raise ProtocolError(
                f"network: expected {local.network_id:#x}, got {hello.network_id:#x}"
            )
        if hello.node_id == local.node_id:
            raise ProtocolError(
                "node id: expected another node's, got this node's own (connected to itself)"
            )
        self.state = State.OPEN
        self.node_id, self.api = hello.node_id, hello.api
        return HelloReceived(hello.node_id, hello.api)

    def close(self, reason: str) -> Drop:
        """Give up on the peer (the driver's reasons: a refusal by the PeerSet, a frame
        that is not binary); later frames are ignored."""
        self.state = State.CLOSED
        return Drop(reason)

    def invalid_transaction(self, problem: str) -> Drop | None:
        """The peer sent a transaction that breaks a rule of §5: drop it (``None`` if it
        was dropped already, by an earlier transaction of the same batch say)."""
        if self.state is State.CLOSED:
            return None
        return self.close(f"it sent an invalid transaction: {problem}")

    # -- frames to send (they depend on no connection's state: one frame can go to many) --

    @staticmethod
    def tx(raw: bytes) -> bytes:
        """A TX frame of a transaction's canonical bytes (PROTOCOL §4.2)."""
        return wire.encode(Kind.TX, raw)

    @staticmethod
    def inv(tips: list[TxId]) -> list[bytes]:
        """INV of the (sorted) tips: the first ``MAX_IDS`` of them, one frame (none when
        there are no tips)."""
        return wire.ids(Kind.INV, tips[: wire.MAX_IDS])

    @staticmethod
    def request(ids: list[TxId]) -> list[bytes]:
        """REQUEST frames for ``ids``, ``MAX_IDS`` a frame."""
        return wire.ids(Kind.REQUEST, ids)

    @staticmethod
    def peers(urls: Iterable[str]) -> list[bytes]:
        """The PEERS frame: the URLs, sorted, without duplicates or empty ones."""
        return [wire.peers(sorted(set(urls) - {""}))]

    @staticmethod
    def answer(ids: Iterable[TxId], raw: Callable[[TxId], bytes | None]) -> list[bytes]:
        """TX frames answering a REQUEST: one for each id ``raw`` knows the bytes of."""
        frames = []
        for tx_id in ids:
            data = raw(tx_id)
            if data is not None:
                frames.append(wire.encode(Kind.TX, data))
        return frames


# -- shared by all connections ------------------------------------------------------------------

P = TypeVar("P")


class PeerSet(Generic[P]):
    """The connected peers by node id: one connection per node, at most ``limit``."""

    def __init__(self, limit: int = MAX_PEERS) -> None:
        self.limit = limit
        self.members: dict[bytes, P] = {}

    def join(self, node_id: bytes, peer: P) -> str | None:
        """Register ``peer`` (its HELLO was accepted); the reason to drop it instead."""
        if node_id in self.members:
            return "node id: expected a node not yet connected, got one already connected"
        if len(self.members) >= self.limit:
            return f"peers: expected at most {self.limit}, got one more (peer limit reached)"
        self.members[node_id] = peer
        return None

    def leave(self, node_id: bytes, peer: P) -> bool:
        """Forget ``peer`` if it is the one registered under ``node_id`` (a refused second
        connection to a node never was); whether it was."""
        if node_id in self.members and self.members[node_id] is peer:
            del self.members[node_id]
            return True
        return False

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[P]:
        return iter(self.members.values())


class RequestTracker:
    """Which missing ids were asked for, how often, when last.

    Asking counts an attempt per peer asked; an id asked for ``max_attempts`` times is
    not asked for again (until forgotten). Housekeeping asks again only for ids whose
    last attempt is ``retry_after`` seconds old (:meth:`due`).
    """

    def __init__(self, max_attempts: int = MAX_ATTEMPTS, retry_after: float = RETRY_AFTER) -> None:
        self.max_attempts = max_attempts
        self.retry_after = retry_after
        self._requested: dict[TxId, tuple[int, float]] = {}

    def ask(self, ids: Iterable[TxId], now: float, known: Callable[[TxId], bool]) -> list[TxId]:
        """The ids to put in a REQUEST to one peer now: those ``known`` says the node does
        not have, asked for fewer than ``max_attempts`` times. Records the attempt."""
        requested = self._requested
        fresh = []
        for tx_id in ids:
            if known(tx_id):
                continue
            attempts = requested[tx_id][0] if tx_id in requested else 0
            if attempts < self.max_attempts:
                requested[tx_id] = (attempts + 1, now)
                fresh.append(tx_id)
        return fresh

    def due(self, ids: Iterable[TxId], now: float) -> list[TxId]:
        """Those of ``ids`` never asked for, or last asked ``retry_after`` seconds ago."""
        requested = self._requested
        return [t for t in ids if t not in requested or now - requested[t][1] >= self.retry_after]

    def attempts(self, tx_id: TxId) -> int:
        entry = self._requested.get(tx_id)
        return 0 if entry is None else entry[0]

    def arrived(self, tx_id: TxId) -> None:
        """``tx_id`` is attached: no more bookkeeping for it."""
        self._requested.pop(tx_id, None)

    def tidy(self, now: float) -> None:
        """Bound the bookkeeping: past ``MAX_REQUESTED`` ids, forget the old ones."""
        if len(self._requested) > MAX_REQUESTED:
            self._requested = {
                t: v for t, v in self._requested.items() if now - v[1] < FORGET_AFTER
            }

    def __len__(self) -> int:
        return len(self._requested)
