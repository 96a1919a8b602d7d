"""Gossip between nodes over websockets: the driver of :mod:`tangle.node.peer` (layer 5, I/O).

This module only moves bytes and keeps time. The rules (HELLO first and once, the
network, the rate limit, which ids to ask for and how often, what gets a peer dropped)
live in the pure :mod:`tangle.node.peer`; here are the sockets, queues, tasks and timers
that drive it:

- one connection (inbound on ``/gossip``, or outbound by :meth:`Gossip._dial_loop`, which
  reconnects with backoff from 0.5 s doubling to 30 s) is a :class:`Peer`: a websocket, a
  :class:`~tangle.node.peer.PeerProtocol`, and an outbox (``OUTBOX`` frames; when full,
  frames are dropped and the next INV repairs it) that a sender task drains;
- every frame received goes, with ``time.monotonic()``, to the protocol, and the driver
  acts on the event it returns (the protocol's docstring says what each one asks for);
- transactions go through a fair, bounded ingest queue
  (:class:`~tangle.node.fairness.FairQueue`: ``INGEST`` in all, ``PEER_SHARE`` per peer,
  served by deficit round robin so a busy peer cannot starve the others) to two stages:
  stateless validation (§5) in batches of ``BATCH`` on a worker thread, then attachment
  on the event loop (``node.accept``), forwarding to every other peer, and requests for
  missing parents;
- housekeeping every ``RETRY_AFTER`` seconds: INV of the tips to every peer every
  ``INV_EVERY`` seconds, and requests again for parents still missing.

The node is reached only through ``knows``/``raw``/``tips``/``missing_parents``/
``accept``, ``params``, ``key``, ``config.peers`` and ``on_new``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from tangle.errors import InvalidTransaction
from tangle.node import wire
from tangle.node.fairness import FairQueue
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
    PeerSet,
    PeersReceived,
    RequestReceived,
    RequestTracker,
    TransactionReceived,
)
from tangle.tangle import Outcome
from tangle.transaction import Transaction, TxId
from tangle.validation import validate_stateless

log = logging.getLogger(__name__)

OUTBOX = 20_000
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
CLOSE_WITHIN = 2.0
"""Seconds a closing handshake may take before the connection is aborted: a peer that
stops reading cannot hold a close (or whoever awaits it) for longer."""
_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


@dataclass(eq=False)
class Peer:
    """One connection: its websocket, its protocol state, its outbox."""

    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse
    label: str
    protocol: PeerProtocol
    transport: asyncio.BaseTransport | None = None
    """The connection under the websocket, aborted when a close does not finish."""
    outbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(OUTBOX))
    sender: asyncio.Task[None] | None = None
    dropped: int = 0

    @property
    def node_id(self) -> bytes:
        return self.protocol.node_id

    @property
    def api(self) -> str:
        return self.protocol.api

    def send(self, frame: bytes) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1  # the next INV lets the peer ask again

    def send_all(self, frames: Iterable[bytes]) -> None:
        for frame in frames:
            self.send(frame)

    async def close(self) -> None:
        """Close the websocket within ``CLOSE_WITHIN`` seconds, else abort the connection
        (a full send buffer would hold the closing handshake for as long as the peer
        does not read)."""
        if self.sender is not None:
            self.sender.cancel()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the close finishes, and a dial loop would then never stop.
            async with asyncio.timeout(CLOSE_WITHIN):
                await self.ws.close()
        except TimeoutError:
            self.abort()
        except asyncio.CancelledError:
            self.abort()
            raise
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            pass  # the connection is gone already

    def abort(self) -> None:
        """Drop the connection and whatever it has not sent: a closing handshake that
        did not finish may leave unsent bytes that a peer that does not read never
        takes, and aiohttp's next close of the websocket returns at once, leaving them."""
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]


def _transport_of(ws: aiohttp.ClientWebSocketResponse) -> asyncio.BaseTransport | None:
    """The connection under an outbound websocket (aiohttp has no public accessor)."""
    connection = getattr(getattr(ws, "_response", None), "connection", None)
    return getattr(connection, "transport", None)


class Gossip:
    """All peer connections of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.api = ""
        self._peers: PeerSet[Peer] = PeerSet()
        self.known_urls: set[str] = set(node.config.peers)
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
        self.received = 0
        self.forwarded = 0
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
        await asyncio.gather(*(peer.close() for peer in self.peers.values()))
        if self._session is not None:
            await self._session.close()

    # -- connections ----------------------------------------------------------------------

    def _protocol(self) -> PeerProtocol:
        node = self.node
        return PeerProtocol(LocalInfo(node.params.network_id, node.key.public_key, self.api))

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The /gossip endpoint: an inbound peer."""
        ws = web.WebSocketResponse(max_msg_size=wire.MAX_FRAME, heartbeat=15)
        await ws.prepare(request)
        peer = Peer(ws, f"inbound {request.remote}", self._protocol(), request.transport)
        await self._serve(peer)
        return ws

    async def _dial_loop(self, url: str) -> None:
        """Keep a connection to ``url``, reconnecting with backoff (0.5 s doubling to 30 s)."""
        delay = 0.5
        target = url.rstrip("/") + "/gossip"
        while True:
            try:
                assert self._session is not None
                ws = await self._session.ws_connect(
                    target,
                    max_msg_size=wire.MAX_FRAME,
                    heartbeat=15,
                    timeout=aiohttp.ClientWSTimeout(ws_close=10),
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("cannot reach peer %s: %s", url, exc)
            else:
                delay = 0.5
                await self._serve(Peer(ws, url, self._protocol(), _transport_of(ws)))
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

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
        peer.send_all(protocol.start(monotonic()))
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
            peer.send_all(PeerProtocol.answer(event.ids, self.node.raw))
        elif isinstance(event, PeersReceived):
            self.known_urls.update(event.urls)
        elif isinstance(event, HelloReceived):
            refusal = self._peers.join(event.node_id, peer)
            if refusal is not None:
                return self._on_event(peer, peer.protocol.close(refusal))
            if event.api:
                peer.label = event.api
            log.info("peer %s connected", peer.label)
            peer.send_all(PeerProtocol.inv(self.node.tips()))
            peer.send_all(PeerProtocol.peers([self.api, *self.known_urls]))
        elif isinstance(event, Drop):
            log.warning("dropping peer %s: %s", peer.label, event.reason)
            return False
        return True

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
        """INV to every peer, and re-requests of parents still missing."""
        last_inv = 0.0
        while True:
            await asyncio.sleep(RETRY_AFTER)
            now = time.monotonic()
            if now - last_inv >= INV_EVERY:
                last_inv = now
                frames = PeerProtocol.inv(self.node.tips())
                for peer in self.peers.values():
                    peer.send_all(frames)
            missing = self._tracker.due(self.node.missing_parents(), now)[:RETRY_IDS]
            for peer in list(self.peers.values()):
                self._request(peer, missing, now, self.node.knows)
            self._tracker.tidy(now)
