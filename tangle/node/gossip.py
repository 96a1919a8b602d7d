"""Gossip between nodes over websockets (layer 5, I/O).

Each connection starts with HELLO both ways (a wrong network closes it, a second
connection to the same node is dropped), then INV of the sender's tips so each side
can ask for what it lacks: that is the sync on connect. New transactions travel as TX
frames; a receiver validates them (stateless rules, batched on a worker thread),
attaches them, and forwards to every other peer those it did not know. A transaction
whose parents are missing waits in the tangle's buffer while the parents are
requested from the peer that sent it, then from any peer, at most ``MAX_ATTEMPTS``
times. Every few seconds each side sends INV again, which heals lost frames.

Everything is bounded: outgoing queues (full: frames are dropped, INV repairs it),
the ingest queue, frames per second per peer, ids per REQUEST, peers. A peer that
sends garbage (a frame or a transaction breaking the rules) is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from tangle.errors import EncodingError, InvalidTransaction
from tangle.node import wire
from tangle.node.errors import ProtocolError
from tangle.node.node import Node
from tangle.node.wire import Kind
from tangle.tangle import Outcome
from tangle.transaction import Transaction, TxId, decode
from tangle.validation import validate_stateless

log = logging.getLogger(__name__)

OUTBOX = 20_000
INGEST = 50_000
BATCH = 256
VALIDATED_BATCHES = 4
"""Validated batches waiting to be attached: enough to keep both stages busy."""
MAX_PEERS = 16
MAX_ATTEMPTS = 5
RETRY_AFTER = 1.0
INV_EVERY = 3.0
RATE = 20_000.0
"""Frames per second a peer may send (token bucket); beyond that its frames are dropped."""
BURST = 40_000.0


@dataclass(eq=False)
class Peer:
    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse
    label: str
    node_id: bytes = b""
    api: str = ""
    outbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(OUTBOX))
    sender: asyncio.Task[None] | None = None
    tokens: float = BURST
    refilled: float = field(default_factory=time.monotonic)
    dropped: int = 0

    def send(self, frame: bytes) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1  # the next INV lets the peer ask again

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.refilled) * RATE)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Gossip:
    """All peer connections of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.api = ""
        self.peers: dict[bytes, Peer] = {}
        self.known_urls: set[str] = set(node.config.peers)
        self._ingest: asyncio.Queue[tuple[Transaction, Peer]] = asyncio.Queue(INGEST)
        self._validated: asyncio.Queue[list[tuple[tuple[Transaction, Peer], str | None]]] = (
            asyncio.Queue(VALIDATED_BATCHES)
        )
        self._requested: dict[TxId, tuple[int, float]] = {}
        self._queued: set[TxId] = set()
        """Ids in the ingest queue: a copy arriving meanwhile (direct and forwarded, or an
        answer to a REQUEST) is not validated twice."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.received = 0
        self.forwarded = 0
        node.on_new.append(self.broadcast)

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
        for peer in list(self.peers.values()):
            await peer.ws.close()
        if self._session is not None:
            await self._session.close()

    # -- connections ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The /gossip endpoint: an inbound peer."""
        ws = web.WebSocketResponse(max_msg_size=wire.MAX_FRAME, heartbeat=15)
        await ws.prepare(request)
        await self._serve(Peer(ws, f"inbound {request.remote}"))
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
                await self._serve(Peer(ws, url))
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

    async def _serve(self, peer: Peer) -> None:
        node = self.node
        peer.sender = asyncio.ensure_future(self._sender(peer))
        peer.send(wire.hello(node.params.network_id, node.key.public_key, self.api))
        try:
            async for msg in peer.ws:
                if msg.type is not WSMsgType.BINARY:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                        break
                    raise ProtocolError(f"expected binary frames, got {msg.type.name}")
                if not peer.allow():
                    continue
                await self._on_frame(peer, msg.data)
        except ProtocolError as exc:
            log.warning("dropping peer %s: %s", peer.label, exc)
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.info("lost peer %s: %s", peer.label, exc)
        finally:
            peer.sender.cancel()
            if self.peers.get(peer.node_id) is peer:
                del self.peers[peer.node_id]
                log.info("peer %s disconnected", peer.label)
            await peer.ws.close()

    async def _sender(self, peer: Peer) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            while True:
                frame = await peer.outbox.get()
                await peer.ws.send_bytes(frame)

    # -- messages -------------------------------------------------------------------------

    async def _on_frame(self, peer: Peer, frame: bytes) -> None:
        kind, payload = wire.decode(frame)
        if not peer.node_id and kind is not Kind.HELLO:
            raise ProtocolError(f"expected HELLO first, got {kind.name}")
        if kind is Kind.HELLO:
            self._on_hello(peer, wire.read_hello(payload))
        elif kind is Kind.TX:
            try:
                tx = decode(payload)
            except EncodingError as exc:
                raise ProtocolError(f"TX does not decode: {exc}") from None
            self.received += 1
            if (
                tx.id in self._queued
                or tx.id in self.node.tangle
                or self.node.tangle.is_buffered(tx.id)
                or self.node.is_pruned(tx.id)  # history this node replaced by a snapshot
            ):
                return
            with contextlib.suppress(asyncio.QueueFull):  # overloaded: INV brings it back
                self._ingest.put_nowait((tx, peer))
                self._queued.add(tx.id)
        elif kind is Kind.REQUEST:
            for tx_id in wire.read_ids(payload):
                if tx_id in self.node.tangle:
                    peer.send(wire.encode(Kind.TX, self.node.tangle.get(tx_id).encode()))
        elif kind is Kind.INV:
            wanted = [
                t
                for t in wire.read_ids(payload)
                if t not in self.node.tangle
                and not self.node.tangle.is_buffered(t)
                and t not in self._queued
                and not self.node.is_pruned(t)
            ]
            self._request(peer, wanted)
        elif kind is Kind.PEERS:
            self.known_urls.update(wire.read_peers(payload))

    def _on_hello(self, peer: Peer, hello: wire.Hello) -> None:
        node = self.node
        if peer.node_id:
            raise ProtocolError("a second HELLO")
        if hello.network_id != node.params.network_id:
            raise ProtocolError(
                f"network: expected {node.params.network_id:#x}, got {hello.network_id:#x}"
            )
        if hello.node_id == node.key.public_key:
            raise ProtocolError("connected to itself")
        if hello.node_id in self.peers:
            raise ProtocolError("already connected to this node")
        if len(self.peers) >= MAX_PEERS:
            raise ProtocolError(f"peer limit {MAX_PEERS} reached")
        peer.node_id, peer.api = hello.node_id, hello.api
        if hello.api:
            peer.label = hello.api
        self.peers[hello.node_id] = peer
        log.info("peer %s connected", peer.label)
        for frame in wire.ids(Kind.INV, self._tips()):
            peer.send(frame)
        peer.send(wire.peers(sorted({self.api, *self.known_urls} - {""})))

    def _tips(self) -> list[TxId]:
        return sorted(self.node.tangle.tips())[: wire.MAX_IDS]

    def _request(self, peer: Peer, wanted: list[TxId]) -> None:
        now = time.monotonic()
        fresh = []
        for tx_id in wanted:
            if self.node.is_pruned(tx_id):
                continue  # below this node's snapshot: never asked for again
            attempts, _ = self._requested.get(tx_id, (0, 0.0))
            if attempts < MAX_ATTEMPTS:
                self._requested[tx_id] = (attempts + 1, now)
                fresh.append(tx_id)
        for frame in wire.ids(Kind.REQUEST, fresh):
            peer.send(frame)

    def broadcast(self, tx: Transaction, source: Peer | None = None) -> None:
        """Send ``tx`` to every peer but ``source``."""
        frame = wire.encode(Kind.TX, tx.encode())
        for peer in self.peers.values():
            if peer is not source:
                peer.send(frame)
                self.forwarded += 1

    # -- ingest -----------------------------------------------------------------------------

    async def _validate_loop(self) -> None:
        """Stage 1: signatures and work, a batch at a time on a thread (libsodium releases
        the GIL), while stage 2 attaches the previous batch on the loop."""
        while True:
            batch = [await self._ingest.get()]
            while len(batch) < BATCH and not self._ingest.empty():
                batch.append(self._ingest.get_nowait())
            verdicts = await asyncio.to_thread(self._validate, [tx for tx, _ in batch])
            await self._validated.put(list(zip(batch, verdicts, strict=True)))

    async def _accept_loop(self) -> None:
        """Stage 2: attach, forward, ask for missing parents."""
        while True:
            for (tx, peer), problem in await self._validated.get():
                self._queued.discard(tx.id)
                if problem is not None:
                    log.warning(
                        "dropping peer %s: it sent an invalid transaction: %s", peer.label, problem
                    )
                    await peer.ws.close()
                    continue
                try:
                    result = self.node.accept(tx)
                except Exception:  # a bug must not stop all gossip ingest, nor stay silent
                    log.exception("attaching %s failed", tx.id.hex())
                    continue
                if result.outcome is Outcome.BUFFERED:
                    self._request(peer, list(result.missing))
                for tx_id in result.attached:
                    self._requested.pop(tx_id, None)
                    self.broadcast(self.node.tangle.get(tx_id), peer)

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
                frames = wire.ids(Kind.INV, self._tips())
                for peer in self.peers.values():
                    for frame in frames:
                        peer.send(frame)
            missing = [
                t
                for t in self.node.tangle.missing_parents()
                if now - self._requested.get(t, (0, 0.0))[1] >= RETRY_AFTER
            ]
            for peer in list(self.peers.values()):
                self._request(peer, missing[: 4 * wire.MAX_IDS])
            if len(self._requested) > 100_000:  # forget old bookkeeping
                self._requested = {t: v for t, v in self._requested.items() if now - v[1] < 60}
