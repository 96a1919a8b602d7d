"""One gossip connection's I/O: its websocket, its outbox, its close (layer 5, I/O).

Also :func:`handshake` and :func:`connect`, the client side of the HELLO/AUTH exchange
for tools that speak gossip without being a node.

:class:`Peer` couples a websocket with its sans-io :class:`~tangle.node.peer.PeerProtocol`
and an :class:`Outbox` that a sender task drains. The outbox is bounded twice, in frames
(``OUTBOX``) and in bytes (``OUTBOX_BYTES``): past either bound a frame is dropped (the
next INV lets the peer ask again) and the time it started dropping is kept, so the
driver can drop a peer that has not read for ``STALL`` seconds. A peer that asks for
thousands of large transactions and stops reading holds ``OUTBOX_BYTES``, not what it
asked for.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tangle.node import wire
from tangle.node.peer import Drop, HelloReceived, LocalInfo, PeerProtocol, ProveId
from tangle.signing import Keypair

OUTBOX = 20_000
OUTBOX_BYTES = 2 * 1024 * 1024
STALL = 10.0
"""Seconds a peer's outbox may stay full before the peer is dropped as not reading."""
CONNECT_WITHIN = 5.0
"""Seconds a dial may take up to the websocket (a tarpit holds a dial no longer)."""
CLOSE_WITHIN = 2.0
"""Seconds a closing handshake may take before the connection is aborted: a peer that
stops reading cannot hold a close (or whoever awaits it) for longer."""


class Outbox:
    """Frames waiting to be sent, bounded in count and in bytes."""

    __slots__ = ("_frames", "_ready", "bytes", "dropped", "full_since", "max_bytes", "max_frames")

    def __init__(self, max_frames: int = OUTBOX, max_bytes: int = OUTBOX_BYTES) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._frames: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()
        self.bytes = 0
        self.dropped = 0
        self.full_since: float | None = None
        """When it last started dropping frames (None: it has room)."""

    def put(self, frame: bytes) -> bool:
        """Queue ``frame``, or drop it (False) if that would pass a bound."""
        if len(self._frames) >= self.max_frames or self.bytes + len(frame) > self.max_bytes:
            self.dropped += 1
            if self.full_since is None:
                self.full_since = time.monotonic()
            return False
        self._frames.append(frame)
        self.bytes += len(frame)
        self._ready.set()
        return True

    def full(self) -> bool:
        return self.full_since is not None

    async def get(self) -> bytes:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        self.bytes -= len(frame)
        if (
            self.full_since is not None
            and self.bytes <= self.max_bytes // 2
            and len(self._frames) <= self.max_frames // 2
        ):
            self.full_since = None  # room again: half of either bound
        return frame

    def __len__(self) -> int:
        return len(self._frames)


@dataclass(eq=False)
class Peer:
    """One connection: its websocket, its protocol state, its outbox."""

    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse
    label: str
    protocol: PeerProtocol
    transport: asyncio.BaseTransport | None = None
    """The connection under the websocket, aborted when a close does not finish."""
    outbound: bool = False
    group: str = ""
    """Its address group (:func:`tangle.node.slots.address_group`), for inbound caps."""
    outbox: Outbox = field(default_factory=Outbox)
    sender: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> bytes:
        return self.protocol.node_id

    @property
    def api(self) -> str:
        return self.protocol.api

    @property
    def dropped(self) -> int:
        return self.outbox.dropped

    def send(self, frame: bytes) -> None:
        self.outbox.put(frame)

    def send_all(self, frames: Iterable[bytes]) -> None:
        for frame in frames:
            self.outbox.put(frame)

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


def transport_of(ws: aiohttp.ClientWebSocketResponse) -> asyncio.BaseTransport | None:
    """The connection under an outbound websocket (aiohttp has no public accessor)."""
    connection = getattr(getattr(ws, "_response", None), "connection", None)
    return getattr(connection, "transport", None)


async def handshake(
    send: Callable[[bytes], Awaitable[object]],
    receive: Callable[[], Awaitable[bytes]],
    local: LocalInfo,
) -> PeerProtocol:
    """This side of the HELLO and AUTH exchange over any transport (``send`` a frame,
    ``receive`` the next binary frame): the open protocol, or ConnectionError with the
    reason the peer's frames were refused. For tools and tests that speak gossip
    without running a node (a benchmark's feeder, a scripted attacker)."""
    protocol = PeerProtocol(local, outbound=True)
    for frame in protocol.start(time.monotonic(), secrets.token_bytes(wire.CHALLENGE_SIZE)):
        await send(frame)
    while True:
        event = protocol.receive(await receive(), time.monotonic())
        if isinstance(event, ProveId):
            await send(event.frame)
        elif isinstance(event, HelloReceived):
            if event.proof:
                await send(event.proof)
            return protocol
        elif isinstance(event, Drop):
            raise ConnectionError(f"gossip handshake: {event.reason}")


async def connect(
    session: aiohttp.ClientSession, api: str, key: Keypair, network_id: int, own_api: str = ""
) -> aiohttp.ClientWebSocketResponse:
    """A gossip connection to the node at ``api``, past the handshake, as node ``key``."""
    async with asyncio.timeout(CONNECT_WITHIN):
        ws = await session.ws_connect(api.rstrip("/") + "/gossip", max_msg_size=wire.MAX_FRAME)

    async def receive() -> bytes:
        msg = await ws.receive(timeout=10)
        if msg.type is not aiohttp.WSMsgType.BINARY:
            raise ConnectionError(f"gossip handshake: expected a binary frame, got {msg.type}")
        data: bytes = msg.data
        return data

    try:
        await handshake(
            ws.send_bytes, receive, LocalInfo(network_id, key.public_key, own_api, key.sign)
        )
    except BaseException:
        await ws.close()
        raise
    return ws
