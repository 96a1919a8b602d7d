"""The gossip protocol of one peer connection, without I/O (layer 5, pure).

Like h11 for HTTP, this module holds the rules and :mod:`tangle.node.gossip` moves the
bytes: nothing here touches a socket, an event loop, a clock or a log. The driver passes
each frame it receives and the time (``now``, seconds on a monotonic clock) in, gets
back what the frame means, and sends the frames these objects hand it.

:class:`PeerProtocol` (one per connection) goes through four states::

    AWAITING_HELLO --HELLO: right network, not this node--> AWAITING_AUTH --AUTH--> OPEN
          |                                                     |                    |
          +------------ any rule broken, or ``HELLO_WITHIN`` passed: a Drop -> CLOSED <-+

- ``AWAITING_HELLO``: from construction. :meth:`PeerProtocol.start` gives the frame of
  this node's own HELLO, with a fresh challenge, to be sent first. Only a HELLO is
  acceptable from the peer.
- ``AWAITING_AUTH``: the peer's HELLO was on this node's network and not from this node
  itself. On the dialling side (``outbound``) the event :class:`ProveId` carries this
  node's AUTH (the node key's signature of the peer's challenge, both ids and its role)
  to send at once; the accepting side sends its AUTH only once the dialler's verified
  (in :class:`HelloReceived`), so it never signs for a stranger and cannot be used as a
  signing oracle. Only the peer's AUTH is acceptable: its signature of this node's
  challenge by the key that is its node id. Nobody can claim another node's id without
  its key. (A node that dials an attacker still signs the attacker's challenge, so an
  attacker can pass itself off as a node that dialled it while that connection lasts,
  relaying both ways; closing that needs an encrypted channel bound to the keys.)
- ``OPEN``: the AUTH verified. TX, REQUEST, INV and PEERS are accepted; a second HELLO
  or AUTH is not.
- ``CLOSED``: a :class:`Drop` was returned (a malformed frame, a rule broken, no proven
  HELLO within ``HELLO_WITHIN`` seconds (:meth:`PeerProtocol.expired`), or the driver's
  :meth:`PeerProtocol.close`). Frames received later mean nothing (``None``).

:meth:`PeerProtocol.receive` turns one frame into at most one event (``None`` when there
is nothing to do), so the hot path allocates no list. What the driver does with each:

- :class:`ProveId` ``(frame)``: send the frame.
- :class:`HelloReceived` ``(node_id, api, proof)``: send ``proof`` if any, register the peer in the
  :class:`~tangle.node.slots.PeerSet` (whose refusal is a reason to drop it, and which
  may name a peer to evict), then send :meth:`~PeerProtocol.inv` of its tips (the sync on
  connect) and :meth:`~PeerProtocol.peers` of the URLs it knows.
- :class:`TransactionReceived` ``(tx)``: decoded, not yet validated. Unless the node
  already knows it (or has it queued), validate it (§5) and attach it; if it breaks a
  rule, :meth:`~PeerProtocol.invalid_transaction` gives the Drop.
- :class:`RequestReceived` ``(ids)``: send :meth:`~PeerProtocol.answer` (TX frames of the
  ids the node holds; others are ignored).
- :class:`InventoryReceived` ``(ids)``: send :meth:`~PeerProtocol.request` of what the
  :class:`RequestTracker` says to ask for (ids not known, not asked too often).
- :class:`PeersReceived` ``(urls)``: the valid URLs of the frame, for the
  :class:`~tangle.node.addrbook.AddressBook`.
- :class:`Drop` ``(reason)``: log the reason, close the connection, leave the PeerSet.

A frame beyond the peer's rate (a token bucket of ``RATE`` frames per second, ``BURST``
deep, refilled by ``now``; INV and REQUEST frames, which name up to 256 ids each, also
from a bucket of ``ID_RATE`` a second, ``ID_BURST`` deep) is ignored without an event and
counted in ``PeerProtocol.throttled``.

Shared by all connections of a node: :class:`RequestTracker` (which ids were asked for,
when, how often: a missing id is asked for at most ``MAX_ATTEMPTS`` times, housekeeping
retries one only ``RETRY_AFTER`` seconds after the last attempt, of one peer at a time,
and gives up on it after that; at most ``MAX_REQUESTED`` ids).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from tangle.errors import EncodingError, InvalidSignature
from tangle.node import wire
from tangle.node.errors import ProtocolError
from tangle.node.wire import Kind
from tangle.signing import verify_signature
from tangle.transaction import Transaction, TxId, decode

HELLO_WITHIN = 5.0
"""Seconds a connection has to send its HELLO and prove it (AUTH)."""
MAX_ATTEMPTS = 5
"""Requests for one missing id before giving up on it."""
RETRY_AFTER = 1.0
"""Seconds between two housekeeping requests for the same missing id."""
INV_EVERY = 3.0
"""Seconds between two INV of the tips to every peer (heals lost frames)."""
RATE = 20_000.0
"""Frames per second a peer may send (token bucket); beyond that its frames are dropped."""
BURST = 40_000.0
ID_RATE = 200.0
"""INV and REQUEST frames per second a peer may send (each names up to 256 ids, so it
costs the node 256 times a TX frame's lookups); beyond that they are dropped."""
ID_BURST = 400.0
PEERS_EVERY = 10.0
"""Seconds between two PEERS frames a peer may send (parsing one costs ~1 ms)."""
MAX_REQUESTED = 65_536
"""Request bookkeeping entries kept at most (about 10 MB): past it the oldest go."""
FORGET_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class LocalInfo:
    """What this node says of itself in its HELLO, and how it proves it."""

    network_id: int
    node_id: bytes
    api: str
    sign: Callable[[bytes], bytes]
    """Signs with the node key (whose public key is ``node_id``)."""


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProveId:
    """The peer's HELLO is acceptable: send ``frame`` (this node's AUTH) and wait for its."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """The peer's HELLO, its node id proven by its AUTH: the connection is open. On the
    accepting side, ``proof`` is this node's AUTH, to be sent first."""

    node_id: bytes
    api: str
    proof: bytes = b""


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
    ProveId
    | HelloReceived
    | TransactionReceived
    | RequestReceived
    | InventoryReceived
    | PeersReceived
    | Drop
)


class State(Enum):
    AWAITING_HELLO = "awaiting HELLO"
    AWAITING_AUTH = "awaiting AUTH"
    OPEN = "open"
    CLOSED = "closed"


# -- one connection --------------------------------------------------------------------------


class PeerProtocol:
    """The state machine of one connection (see the module's docstring)."""

    __slots__ = (
        "api",
        "burst",
        "challenge",
        "id_refilled",
        "id_tokens",
        "local",
        "node_id",
        "outbound",
        "peer_challenge",
        "peers_at",
        "rate",
        "refilled",
        "started",
        "state",
        "throttled",
        "tokens",
    )

    def __init__(
        self,
        local: LocalInfo,
        *,
        outbound: bool = False,
        rate: float = RATE,
        burst: float = BURST,
    ) -> None:
        self.local = local
        self.outbound = outbound
        """This node dialled: it proves its id first; the accepting side proves its own
        only once the dialler's proof verified, so it signs nothing for a stranger."""
        self.peer_challenge = b""
        self.peers_at = -PEERS_EVERY
        self.state = State.AWAITING_HELLO
        self.node_id = b""
        """The peer's node id, once its HELLO was accepted (proven once OPEN)."""
        self.api = ""
        """The API URL the peer announced in its HELLO (may be empty)."""
        self.challenge = b""
        self.started = 0.0
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.refilled = 0.0
        self.id_tokens = ID_BURST
        self.id_refilled = 0.0
        self.throttled = 0
        """Frames ignored because the peer sent faster than ``rate``."""

    def start(self, now: float, challenge: bytes) -> list[bytes]:
        """The frames to send first: this node's HELLO, with ``challenge`` (fresh random
        bytes from the driver) for the peer to sign."""
        if len(challenge) != wire.CHALLENGE_SIZE:
            raise ValueError(f"challenge: expected {wire.CHALLENGE_SIZE} bytes")
        self.refilled = self.id_refilled = self.started = now
        self.challenge = challenge
        local = self.local
        return [wire.hello(local.network_id, local.node_id, challenge, local.api)]

    def expired(self, now: float) -> Drop | None:
        """A Drop if the peer has not proven its HELLO within ``HELLO_WITHIN`` seconds of
        the start (the driver asks on a timer)."""
        if self.state is State.OPEN or self.state is State.CLOSED:
            return None
        if now - self.started < HELLO_WITHIN:
            return None
        waited = "HELLO" if self.state is State.AWAITING_HELLO else "AUTH"
        return self.close(f"{waited}: expected within {HELLO_WITHIN:g} s of connecting, got none")

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
            if self.state is not State.OPEN:
                return self._handshake(kind, payload)
            if kind is Kind.TX:
                try:
                    return TransactionReceived(decode(payload))
                except EncodingError as exc:
                    raise ProtocolError(f"TX does not decode: {exc}") from None
            if kind is Kind.INV or kind is Kind.REQUEST:
                tokens = self.id_tokens + (now - self.id_refilled) * ID_RATE
                self.id_tokens = tokens if tokens < ID_BURST else ID_BURST
                self.id_refilled = now
                if self.id_tokens < 1:
                    self.throttled += 1
                    return None
                self.id_tokens -= 1
                ids = wire.read_ids(payload)
                return InventoryReceived(ids) if kind is Kind.INV else RequestReceived(ids)
            if kind is Kind.PEERS:
                if now - self.peers_at < PEERS_EVERY:
                    self.throttled += 1  # one a PEERS_EVERY: not even parsed
                    return None
                self.peers_at = now
                return PeersReceived(wire.read_peers(payload))
            raise ProtocolError(f"expected one {kind.name}, got a second {kind.name}")
        except ProtocolError as exc:
            return self.close(str(exc))

    def _handshake(self, kind: Kind, payload: bytes) -> Event | None:
        if self.state is State.AWAITING_HELLO:
            if kind is not Kind.HELLO:
                raise ProtocolError(f"expected HELLO first, got {kind.name}")
            return self._hello(wire.read_hello(payload))
        if kind is not Kind.AUTH:
            raise ProtocolError(f"expected AUTH after HELLO, got {kind.name}")
        local = self.local
        message = wire.auth_message(
            local.network_id, self.challenge, self.node_id, local.node_id, not self.outbound
        )
        try:
            verify_signature(self.node_id, message, payload)
        except InvalidSignature:
            raise ProtocolError(
                "AUTH: expected a signature of this connection's challenge by node "
                f"{self.node_id.hex()[:16]}, got one that does not verify"
            ) from None
        self.state = State.OPEN
        if self.outbound:
            return HelloReceived(self.node_id, self.api)
        return HelloReceived(self.node_id, self.api, self._proof())

    def _proof(self) -> bytes:
        local = self.local
        message = wire.auth_message(
            local.network_id, self.peer_challenge, local.node_id, self.node_id, self.outbound
        )
        return wire.encode(Kind.AUTH, local.sign(message))

    def _hello(self, hello: wire.Hello) -> ProveId | None:
        local = self.local
        if hello.network_id != local.network_id:
            raise ProtocolError(
                f"network: expected {local.network_id:#x}, got {hello.network_id:#x}"
            )
        self.node_id, self.api = hello.node_id, hello.api  # claimed, not yet proven
        if hello.node_id == local.node_id:
            raise ProtocolError(
                "node id: expected another node's, got this node's own (connected to itself)"
            )
        self.state = State.AWAITING_AUTH
        self.peer_challenge = hello.challenge
        return ProveId(self._proof()) if self.outbound else None

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


class RequestTracker:
    """Which missing ids were asked for, how often, when last.

    Asking counts an attempt per peer asked; an id asked for ``max_attempts`` times is
    not asked for again (until forgotten). Housekeeping asks again only for ids whose
    last attempt is ``retry_after`` seconds old (:meth:`due`), and gives up on those
    whose attempts ran out (:meth:`given_up`).

    At most ``limit`` ids are kept, in the order they were last asked for: past the
    limit the longest-unasked goes first (an INV flood of made-up ids evicts its own
    entries, about 150 bytes each), and :meth:`tidy` walks only the expired front.
    """

    def __init__(
        self,
        max_attempts: int = MAX_ATTEMPTS,
        retry_after: float = RETRY_AFTER,
        limit: int = MAX_REQUESTED,
    ) -> None:
        self.max_attempts = max_attempts
        self.retry_after = retry_after
        self.limit = limit
        # OrderedDict, not dict: popping a plain dict's first key again and again is
        # quadratic (each lookup skips the slots deleted before it).
        self._requested: OrderedDict[TxId, tuple[int, float]] = OrderedDict()
        self.evicted = 0

    def ask(self, ids: Iterable[TxId], now: float, known: Callable[[TxId], bool]) -> list[TxId]:
        """The ids to put in a REQUEST to one peer now: those ``known`` says the node does
        not have, asked for fewer than ``max_attempts`` times. Records the attempt."""
        requested = self._requested
        fresh = []
        seen: set[TxId] = set()
        for tx_id in ids:
            if tx_id in seen or known(tx_id):
                continue  # an id named twice in one frame is one attempt
            seen.add(tx_id)
            entry = requested.get(tx_id)
            attempts = 0 if entry is None else entry[0]
            if attempts < self.max_attempts:
                requested[tx_id] = (attempts + 1, now)
                requested.move_to_end(tx_id)  # the order is by last attempt
                fresh.append(tx_id)
        while len(requested) > self.limit:
            requested.popitem(last=False)
            self.evicted += 1
        return fresh

    def due(self, ids: Iterable[TxId], now: float) -> list[TxId]:
        """Those of ``ids`` never asked for, or last asked ``retry_after`` seconds ago and
        with attempts left."""
        requested = self._requested
        out = []
        for t in ids:
            entry = requested.get(t)
            if entry is None or (
                entry[0] < self.max_attempts and now - entry[1] >= self.retry_after
            ):
                out.append(t)
        return out

    def given_up(self, ids: Iterable[TxId], now: float) -> list[TxId]:
        """Those of ``ids`` asked for ``max_attempts`` times, the last ``retry_after`` ago:
        no peer had them. They are forgotten here (an INV may bring them back)."""
        requested = self._requested
        out = []
        for t in ids:
            entry = requested.get(t)
            if (
                entry is not None
                and entry[0] >= self.max_attempts
                and now - entry[1] >= self.retry_after
            ):
                del requested[t]
                out.append(t)
        return out

    def attempts(self, tx_id: TxId) -> int:
        entry = self._requested.get(tx_id)
        return 0 if entry is None else entry[0]

    def arrived(self, tx_id: TxId) -> None:
        """``tx_id`` is attached: no more bookkeeping for it."""
        self._requested.pop(tx_id, None)

    def tidy(self, now: float) -> None:
        """Forget ids last asked for ``FORGET_AFTER`` seconds ago (from the front: the
        entries are in the order they were last asked for)."""
        requested = self._requested
        while requested:
            _, (_, asked) = next(iter(requested.items()))
            if now - asked < FORGET_AFTER:
                break
            requested.popitem(last=False)

    def __len__(self) -> int:
        return len(self._requested)
