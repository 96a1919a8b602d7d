"""Gossip between nodes over websockets: the driver of :mod:`tangle.node.peer` (layer 5, I/O).

This module only moves bytes and keeps time; the rules live in the pure
:mod:`tangle.node.peer` (the protocol), :mod:`~tangle.node.slots` (who stays connected)
and :mod:`~tangle.node.addrbook` (whom to dial). Here:

- a connection (inbound on ``/gossip``; outbound to the configured peers by
  :meth:`Gossip._dial_loop`, reconnecting with backoff 0.5 s doubling to 30 s, and to up
  to ``OUTBOUND_TARGET`` learned ones) is a :class:`~tangle.node.link.Peer`: websocket,
  protocol, and an outbox bounded in frames and bytes that a sender task drains;
- it is pending until its HELLO is proven: at most ``MAX_PENDING`` (``PENDING_PER_GROUP``
  from one address group; when full, the oldest of the largest group makes room), more
  get 503 before the upgrade, and one pending after ``HELLO_WITHIN`` s is dropped;
- every frame goes, with ``time.monotonic()``, to the protocol, and the driver acts on
  the event it returns;
- transactions go through a fair, bounded ingest queue (``INGEST`` in all, ``PEER_SHARE``
  per peer, deficit round robin) to stateless validation (§5) in batches of ``BATCH`` on
  a thread, then attachment on the loop (``node.accept``), forwarding, and requests for
  missing parents;
- housekeeping every ``RETRY_AFTER`` s: INV of the tips every ``INV_EVERY`` s; missing
  parents asked again, each of one peer a round; giving up on those no peer had
  (``node.abandon``); the HELLO deadline; dropping peers whose outbox stayed full
  ``STALL`` s; dialling learned peers.

The node is reached only through ``knows``/``raw``/``tips``/``missing_parents``/
``accept``/``abandon``, ``params``, ``key``, ``config.peers`` and ``on_new``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from tangle.errors import InvalidTransaction
from tangle.node import wire
from tangle.node.addrbook import AddressBook
from tangle.node.fairness import FairQueue
from tangle.node.link import CONNECT_WITHIN, STALL, Peer, transport_of
from tangle.node.node import Node
from tangle.node.peer import (
    INV_EVERY,
    RETRY_AFTER,
    Drop,
    Event,
    HelloReceived,
    InventoryReceived,
    LocalInfo,
    PeerProtocol,
    PeersReceived,
    ProveId,
    RequestReceived,
    RequestTracker,
    TransactionReceived,
)
from tangle.node.slots import OUTBOUND_TARGET, PeerSet, address_group
from tangle.tangle import Outcome
from tangle.transaction import Transaction, TxId
from tangle.validation import validate_stateless

log = logging.getLogger(__name__)

INGEST = 50_000
PEER_SHARE = INGEST // 4
"""Transactions one peer may have waiting in the ingest queue."""
QUANTUM = 8 * 1024
"""Bytes of transactions each peer with some waiting gets per round of the queue."""
BATCH = 256
VALIDATED_BATCHES = 4
"""Validated batches waiting to be attached: enough to keep both stages busy."""
RETRY_IDS = 4 * wire.MAX_IDS
"""Missing parents asked for again per peer per housekeeping round."""
MAX_PENDING = 64
"""Connections not yet past a proven HELLO; more are refused (503) before the upgrade."""
PENDING_PER_GROUP = 8
_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


class Gossip:
    """All peer connections of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.api = ""
        self._peers: PeerSet[Peer] = PeerSet()
        self._pending: set[Peer] = set()
        """Connections whose HELLO is not proven yet."""
        self.book = AddressBook(node.config.peers)
        self._dialling: set[str] = set()
        """Learned URLs being dialled or connected."""
        self._ingest: FairQueue[Peer, tuple[Transaction, Peer]] = FairQueue(
            INGEST, PEER_SHARE, QUANTUM
        )
        self._ingest_ready = asyncio.Event()
        self._validated: asyncio.Queue[list[tuple[tuple[Transaction, Peer], str | None]]] = (
            asyncio.Queue(VALIDATED_BATCHES)
        )
        self._tracker = RequestTracker()
        self._queued: set[TxId] = set()
        """Ids in the ingest queue: a copy arriving meanwhile (direct and forwarded, or an
        answer to a REQUEST) is not validated twice."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._round = 0
        self.received = 0
        self.forwarded = 0
        self.refused = 0
        """Connections refused before the upgrade (too many pending)."""
        self.abandoned = 0
        node.on_new.append(self.broadcast)
        node.backlog = self.backlog

    def backlog(self) -> tuple[float, float]:
        """How full the ingest queue is (0..1) and its oldest item's age in seconds: the
        node sheds API load past a bound."""
        return len(self._ingest) / INGEST, self._ingest.oldest_age(time.monotonic())

    @property
    def peers(self) -> dict[bytes, Peer]:
        """The connected peers (past HELLO) by node id."""
        return self._peers.members

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, api: str) -> None:
        self.api = api
        self.book.own = api.rstrip("/")
        self._session = aiohttp.ClientSession()
        self._spawn(self._validate_loop())
        self._spawn(self._accept_loop())
        self._spawn(self._housekeeping())
        for url in self.node.config.peers:
            self._spawn(self._dial_loop(url))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        peers = [*self.peers.values(), *self._pending]
        await asyncio.gather(*(peer.close() for peer in peers))
        if self._session is not None:
            await self._session.close()

    # -- connections ----------------------------------------------------------------------

    def _protocol(self, outbound: bool = False) -> PeerProtocol:
        node = self.node
        key = node.key
        local = LocalInfo(node.params.network_id, key.public_key, self.api, key.sign)
        return PeerProtocol(local, outbound=outbound)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The /gossip endpoint: an inbound peer."""
        group = address_group(request.remote)
        same = sum(1 for p in self._pending if p.group == group)
        if len(self._pending) >= MAX_PENDING and not (group and same >= PENDING_PER_GROUP):
            # Full: the oldest pending one of the largest other group makes room, so a
            # flood from few addresses cannot keep others out (its own are refused).
            self._evict_pending(group)
        if len(self._pending) >= MAX_PENDING or (group and same >= PENDING_PER_GROUP):
            self.refused += 1
            return web.json_response(
                {
                    "error": {
                        "code": "overloaded",
                        "message": f"gossip: expected at most {MAX_PENDING} connections "
                        f"awaiting HELLO ({PENDING_PER_GROUP} from one address), got one more",
                    }
                },
                status=503,
                headers={"Retry-After": "5"},
            )
        ws = web.WebSocketResponse(max_msg_size=wire.MAX_FRAME, heartbeat=15)
        await ws.prepare(request)
        label = f"inbound {request.remote}"
        await self._serve(Peer(ws, label, self._protocol(), request.transport, group=group))
        return ws

    def _evict_pending(self, newcomer: str) -> None:
        sizes: dict[str, int] = {}
        for p in self._pending:
            if p.group != newcomer:
                sizes[p.group] = sizes.get(p.group, 0) + 1
        if not sizes:
            return
        largest = max(sizes.values())
        victim = min(
            (p for p in self._pending if sizes.get(p.group) == largest),
            key=lambda p: p.protocol.started,
        )
        self._pending.discard(victim)
        self._drop(victim, "evicted while awaiting HELLO (pending connections full)")

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        async with asyncio.timeout(CONNECT_WITHIN):  # a tarpit holds a dial no longer
            return await self._session.ws_connect(
                url.rstrip("/") + "/gossip",
                max_msg_size=wire.MAX_FRAME,
                heartbeat=15,
                timeout=aiohttp.ClientWSTimeout(ws_close=10),
            )

    async def _dial_loop(self, url: str) -> None:
        """Keep a connection to ``url``, reconnecting with backoff (0.5 s doubling to 30 s)."""
        delay = 0.5
        while True:
            try:
                ws = await self._connect(url)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("cannot reach peer %s: %s", url, exc)
            else:
                delay = 0.5
                await self._serve(Peer(ws, url, self._protocol(True), transport_of(ws), True))
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

    async def _dial_once(self, url: str) -> None:
        """One connection to a learned peer; the address book hears how it went."""
        try:
            try:
                ws = await self._connect(url)
            except Exception as exc:  # any failure of a stranger's URL
                log.debug("cannot reach learned peer %s: %s", url, exc)
                self.book.failed(url, time.monotonic())
                return
            peer = Peer(ws, url, self._protocol(True), transport_of(ws), True)
            await self._serve(peer)
            if peer.node_id == self.node.key.public_key:
                self.book.forget(url)  # this node's own address, under another name
            else:
                self.book.failed(url, time.monotonic())  # ended: back off before the next
        finally:
            self._dialling.discard(url)

    async def _serve(self, peer: Peer) -> None:
        """Feed the peer's frames to its protocol until it closes or is dropped."""
        protocol = peer.protocol
        receive = protocol.receive
        monotonic = time.monotonic
        knows = self.node.knows
        queued = self._queued
        ingest = self._ingest
        ready = self._ingest_ready
        peer.sender = asyncio.ensure_future(self._sender(peer))
        peer.send_all(protocol.start(monotonic(), secrets.token_bytes(wire.CHALLENGE_SIZE)))
        self._pending.add(peer)
        try:
            async for msg in peer.ws:
                event: Event | None
                now = monotonic()
                if msg.type is WSMsgType.BINARY:
                    event = receive(msg.data, now)
                elif msg.type in _CLOSING:
                    break
                else:
                    event = protocol.close(f"expected binary frames, got {msg.type.name}")
                if isinstance(event, TransactionReceived):  # the hot path, inline
                    tx = event.tx
                    self.received += 1
                    if tx.id in queued or knows(tx.id):
                        continue
                    if not ingest.put(peer, (tx, peer), len(msg.data), now):
                        continue  # its share or the queue is full: INV brings it back
                    queued.add(tx.id)
                    ready.set()
                elif event is not None and not self._on_event(peer, event):
                    break
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.info("lost peer %s: %s", peer.label, exc)
        finally:
            peer.sender.cancel()
            self._pending.discard(peer)
            if self._peers.leave(peer.node_id, peer):
                log.info("peer %s disconnected", peer.label)
            await peer.close()

    async def _sender(self, peer: Peer) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            while True:
                frame = await peer.outbox.get()
                await peer.ws.send_bytes(frame)

    # -- events -----------------------------------------------------------------------------

    def _on_event(self, peer: Peer, event: Event) -> bool:
        """Act on an event other than a transaction; False: drop the peer."""
        if isinstance(event, InventoryReceived):
            self._request(peer, event.ids, time.monotonic(), self._known)
        elif isinstance(event, RequestReceived):
            if not peer.outbox.full():  # answers it does not read cost nothing more
                peer.send_all(PeerProtocol.answer(event.ids, self.node.raw))
        elif isinstance(event, PeersReceived):
            self.book.learn(event.urls, peer.group.encode() or peer.node_id, time.monotonic())
        elif isinstance(event, ProveId):
            peer.send(event.frame)
        elif isinstance(event, HelloReceived):
            self._pending.discard(peer)
            if event.proof:
                peer.send(event.proof)
            refusal, evicted = self._peers.join(
                event.node_id, peer, time.monotonic(), outbound=peer.outbound, group=peer.group
            )
            if refusal is not None:
                return self._on_event(peer, peer.protocol.close(refusal))
            if evicted is not None:
                self._drop(evicted, f"evicted for a new inbound peer ({peer.label})")
            if peer.outbound:
                self.book.connected(peer.label)
            elif event.api:
                peer.label = event.api  # a valid URL (wire.valid_url): safe in a log line
            log.info("peer %s connected", peer.label)
            peer.send_all(PeerProtocol.inv(self.node.tips()))
            peer.send_all(PeerProtocol.peers(self.book.shareable()))
        elif isinstance(event, Drop):
            log.warning("dropping peer %s: %s", peer.label, event.reason)
            return False
        return True

    def _drop(self, peer: Peer, reason: str) -> None:
        """Drop a peer from outside its receive loop (the close runs beside ingest)."""
        drop = peer.protocol.close(reason)
        log.warning("dropping peer %s: %s", peer.label, drop.reason)
        self._spawn(peer.close())

    def _known(self, tx_id: TxId) -> bool:
        """Not to be asked for: known to the node, or waiting in the ingest queue."""
        return tx_id in self._queued or self.node.knows(tx_id)

    def _request(
        self, peer: Peer, ids: Iterable[TxId], now: float, known: Callable[[TxId], bool]
    ) -> None:
        peer.send_all(PeerProtocol.request(self._tracker.ask(ids, now, known)))

    def broadcast(self, tx: Transaction, source: Peer | None = None) -> None:
        """Send ``tx`` to every peer but ``source``."""
        self._forward(PeerProtocol.tx(tx.encode()), source)

    def _forward(self, frame: bytes, source: Peer | None) -> None:
        for peer in self.peers.values():
            if peer is not source:
                peer.send(frame)
                self.forwarded += 1

    # -- ingest -----------------------------------------------------------------------------

    async def _validate_loop(self) -> None:
        """Stage 1: signatures and work, a batch at a time on a thread (libsodium releases
        the GIL), while stage 2 attaches the previous batch on the loop."""
        while True:
            while not self._ingest:
                self._ingest_ready.clear()
                await self._ingest_ready.wait()
            batch = self._ingest.take(BATCH)
            verdicts = await asyncio.to_thread(self._validate, [tx for tx, _ in batch])
            await self._validated.put(list(zip(batch, verdicts, strict=True)))

    async def _accept_loop(self) -> None:
        """Stage 2: attach, forward, ask for missing parents."""
        node = self.node
        while True:
            for (tx, peer), problem in await self._validated.get():
                self._queued.discard(tx.id)
                if problem is not None:
                    drop = peer.protocol.invalid_transaction(problem)
                    if drop is not None:  # None: dropped already
                        log.warning("dropping peer %s: %s", peer.label, drop.reason)
                        self._spawn(peer.close())  # never awaited here: ingest goes on
                    continue
                try:
                    result = node.accept(tx)
                except Exception:  # a bug must not stop all gossip ingest, nor stay silent
                    log.exception("attaching %s failed", tx.id.hex())
                    continue
                if result.outcome is Outcome.BUFFERED:
                    self._request(peer, result.missing, time.monotonic(), node.knows)
                elif tx.id in result.attached:
                    self._peers.relayed(peer.node_id, time.monotonic())
                for tx_id in result.attached:
                    self._tracker.arrived(tx_id)
                    raw = node.raw(tx_id)
                    if raw is not None:
                        self._forward(PeerProtocol.tx(raw), peer)

    def _validate(self, txs: list[Transaction]) -> list[str | None]:
        problems: list[str | None] = []
        for tx in txs:
            try:
                validate_stateless(tx, self.node.params)
            except InvalidTransaction as exc:
                problems.append(str(exc))
            else:
                problems.append(None)
        return problems

    async def _housekeeping(self) -> None:
        """The timers of the module's docstring, every ``RETRY_AFTER`` seconds."""
        last_inv = 0.0
        while True:
            await asyncio.sleep(RETRY_AFTER)
            now = time.monotonic()
            peers = list(self.peers.values())
            if now - last_inv >= INV_EVERY:
                last_inv = now
                frames = PeerProtocol.inv(self.node.tips())
                for peer in peers:
                    peer.send_all(frames)
            for step in (self._deadlines, self._stalls, self._ask_again, self._discover):
                try:  # one step's bug must not end the others (the HELLO deadline first)
                    step(peers, now)
                except Exception:
                    log.exception("gossip housekeeping: %s failed", step.__name__)
            self._tracker.tidy(now)

    def _deadlines(self, peers: list[Peer], now: float) -> None:
        for peer in list(self._pending):
            drop = peer.protocol.expired(now)
            if drop is not None:
                self._pending.discard(peer)
                self._drop(peer, drop.reason)

    def _stalls(self, peers: list[Peer], now: float) -> None:
        for peer in peers:
            since = peer.outbox.full_since
            if since is not None and now - since >= STALL:
                unsent = f"{len(peer.outbox)} frames, {peer.outbox.bytes} bytes"
                self._drop(peer, f"it does not read: {unsent} unsent for {STALL:g} s")

    def _discover(self, peers: list[Peer], now: float) -> None:
        # Not a URL a connected peer announced: that node is connected already (the
        # cost: a connected peer that claims another's URL keeps it from being dialled).
        busy = self._dialling | {peer.api.rstrip("/") for peer in peers}
        for url in self.book.due(now, busy, OUTBOUND_TARGET - len(self._dialling)):
            self._dialling.add(url)
            self._spawn(self._dial_once(url))

    def _ask_again(self, peers: list[Peer], now: float) -> None:
        """Ask again for missing parents, each of one peer (the next one next round), and
        give up on those every attempt failed for."""
        node = self.node
        missing = node.missing_parents()
        gone = self._tracker.given_up(missing, now)
        if gone:
            dropped = node.abandon(gone)
            self.abandoned += dropped
            log.info("gave up on %d missing parents (%d transactions dropped)", len(gone), dropped)
        if not peers:
            return
        due = self._tracker.due(missing, now)[: RETRY_IDS * len(peers)]
        self._round += 1
        shares: list[list[TxId]] = [[] for _ in peers]
        for i, tx_id in enumerate(due):
            shares[(i + self._round) % len(peers)].append(tx_id)
        for peer, ids in zip(peers, shares, strict=True):
            if ids:
                self._request(peer, ids, now, node.knows)

    def status(self) -> dict[str, Any]:
        """What ``GET /api/v1/peers`` shows: the slots, the address book, the bounds."""
        return {
            "peers": [
                {
                    "node_id": peer.node_id.hex(),
                    "api": peer.api,
                    "direction": "outbound" if peer.outbound else "inbound",
                    "last_relay_s_ago": _ago(self._peers.slots[key].relayed),
                    "outbox_frames": len(peer.outbox),
                    "outbox_bytes": peer.outbox.bytes,
                    "dropped_frames": peer.dropped,
                    "throttled_frames": peer.protocol.throttled,
                }
                for key, peer in self.peers.items()
            ],
            "pending": len(self._pending),
            "refused_connections": self.refused,
            "evicted": self._peers.evicted,
            "known_urls": len(self.book),
            "urls_refused": self.book.refused,
            "requests_tracked": len(self._tracker),
            "requests_evicted": self._tracker.evicted,
            "abandoned": self.abandoned,
            "received": self.received,
            "forwarded": self.forwarded,
        }


def _ago(when: float) -> float | None:
    return None if not when else round(time.monotonic() - when, 3)
