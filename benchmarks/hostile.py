"""Scripted attackers and honest traffic, for the adversarial functional suite
(tests/functional/test_attacks.py) and ``python -m benchmarks.attacks``: peers and clients
that do what an honest client library never would (stop reading, never say HELLO, flood),
each an ``async def attacker(api, stop, stats)`` that runs until ``stop`` is set and counts
what it did and what the node did to it in ``stats``.

:class:`RawWebSocket` is a websocket client on a bare socket with a tiny receive buffer:
it reads only when told to, so a test can make a node's send buffer to it fill up, the
way a slow or malicious reader does.

:func:`honest_payments` is the yardstick: payments issued at one node (by its faucet, at
a fixed rate) and the time until another node announces them confirmed on its event
stream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import socket
import statistics
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from tangle import Keypair, NetworkParams, OutputId, TxId, build, encode_address, solve
from tangle.node import link, wire
from tangle.node.peer import LocalInfo
from tangle.node.wire import Kind

Stats = Counter[str]
Attacker = Callable[[str, asyncio.Event, Stats], Awaitable[None]]


class RawWebSocket:
    """A client websocket that never reads unless asked (RFC 6455 framing, binary only)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, url: str, *, receive_buffer: int = 4096) -> RawWebSocket:
        """Open ``url`` (``http://host:port/path``) and upgrade it; the socket's receive
        buffer is ``receive_buffer`` bytes, so the peer's sends block early."""
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"upgrade refused: {head.splitlines()[0]!r}")
        return cls(reader, writer)

    async def send(self, payload: bytes) -> None:
        """One masked binary frame (the socket's own buffer permitting)."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x82, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)
        await asyncio.wait_for(self.writer.drain(), 10)

    async def receive(self) -> bytes:
        """The payload of the next data frame from the server (unmasked, RFC 6455)."""
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(2), 10)
            opcode, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await asyncio.wait_for(self.reader.readexactly(n), 10)
            if opcode == 0x8:
                raise ConnectionError("the server closed the websocket")
            if opcode in (0x1, 0x2):
                return payload

    async def handshake(self, network_id: int, key: Keypair | None = None) -> None:
        """HELLO and AUTH as node ``key`` (a fresh one by default), reading only the
        server's HELLO and AUTH."""
        key = key or Keypair(os.urandom(32))
        await link.handshake(
            self.send, self.receive, LocalInfo(network_id, key.public_key, "", key.sign)
        )

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        self.writer.transport.abort()


# -- honest traffic -----------------------------------------------------------------------


@dataclass
class Honest:
    """Payments issued at one node and confirmed as seen at another."""

    sent: int = 0
    refused: int = 0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def confirmed(self) -> int:
        return len(self.latencies_s)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        return {
            "sent": self.sent,
            "confirmed": self.confirmed,
            "confirmed_share": round(self.confirmed / self.sent, 3) if self.sent else None,
            "refused": self.refused,
            "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1)
            if lat
            else None,
        }


class _AllConfirmed(asyncio.Event):
    def __init__(self, sent: dict[str, float], confirmed: dict[str, float]) -> None:
        super().__init__()
        self.sent, self.confirmed, self.sending_done = sent, confirmed, False

    def check(self) -> None:
        if self.sending_done and self.sent.keys() <= self.confirmed.keys():
            self.set()


async def honest_payments(
    payer: str, watch: str, count: int = 20, rate: float = 5.0, grace: float = 20.0
) -> Honest:
    """``count`` faucet payments at ``payer``, ``rate`` a second (each retried on 503 after
    its Retry-After); each one's time from its request until ``watch`` announces it
    confirmed (waiting at most ``grace`` seconds after the last)."""
    result = Honest()
    sent: dict[str, float] = {}
    confirmed: dict[str, float] = {}
    everything = _AllConfirmed(sent, confirmed)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        ws = await session.ws_connect(f"{watch}/api/v1/events?topics=confirmations")

        async def follow() -> None:
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                event = orjson.loads(msg.data)
                if "seq" in event:
                    confirmed.setdefault(event["data"]["id"], time.monotonic())
                    everything.check()

        reader = asyncio.create_task(follow())
        began = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            address = encode_address(Keypair((5000 + i).to_bytes(32, "big")).address)
            started = time.monotonic()
            for _ in range(20):
                async with session.post(
                    f"{payer}/api/v1/faucet", json={"address": address, "amount": "1"}
                ) as response:
                    if response.status == 201:
                        sent[(await response.json())["id"]] = started
                        break
                    result.refused += 1
                    wait = float(response.headers.get("Retry-After", "1"))
                await asyncio.sleep(wait * random.uniform(0.5, 1.0))
        result.sent = count
        deadline = time.monotonic() + grace
        everything.sending_done = True
        everything.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everything.wait(), max(0.0, deadline - time.monotonic()))
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    result.latencies_s = [confirmed[t] - sent[t] for t in sent if t in confirmed]
    return result


async def under_attack(
    victim: str,
    payer: str,
    attacker: Attacker | None,
    *,
    attack_seconds: float,
    payments: int,
    rate: float,
) -> tuple[Honest, Stats]:
    """Honest payments at ``payer`` watched at ``victim``, with ``attacker`` on ``victim``
    from ``attack_seconds`` before them to their end (None: the baseline)."""
    stats: Stats = Counter()
    stop = asyncio.Event()
    task = asyncio.ensure_future(attacker(victim, stop, stats)) if attacker else None
    try:
        if task is not None:
            await asyncio.sleep(attack_seconds)
            if task.done():
                task.result()  # an attacker that failed says why
                raise RuntimeError("the attacker ended before the honest payments")
        honest = await honest_payments(payer, victim, payments, rate)
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, 10)
    return honest, stats


# -- attackers ----------------------------------------------------------------------------


def _key() -> Keypair:
    return Keypair(os.urandom(32))


async def _until(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _first_or_stop(task: asyncio.Future[Any], stop: asyncio.Event) -> bool:
    """Wait for ``task`` or ``stop``; whether ``task`` finished (it is cancelled if not)."""
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    finished = task.done()
    task.cancel()
    return finished


async def _workers(count: int, worker: Callable[[], Awaitable[None]]) -> None:
    await asyncio.gather(*(worker() for _ in range(count)), return_exceptions=True)


def connection_flood(count: int = 200) -> Attacker:
    """``count`` connections that upgrade to a websocket and never send HELLO; each one
    the node closes is opened again."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        async def worker() -> None:
            while not stop.is_set():
                try:
                    ws = await RawWebSocket.connect(api + "/gossip")
                except (ConnectionError, OSError, TimeoutError):
                    stats["refused"] += 1
                    await _until(stop, 0.5)
                    continue
                stats["opened"] += 1
                if await _first_or_stop(asyncio.ensure_future(ws.reader.read()), stop):
                    stats["closed_by_node"] += 1
                ws.abort()

        await _workers(count, worker)

    return attack


def eclipse(network_id: int, count: int = 40) -> Attacker:
    """``count`` peers with fresh node keys (a proven HELLO each) that relay nothing, each
    one the node drops or evicts reconnecting at once."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        ws = await link.connect(session, api, _key(), network_id)
                    except (ConnectionError, aiohttp.ClientError, OSError, TimeoutError):
                        stats["refused"] += 1
                        await _until(stop, 0.2)
                        continue
                    stats["joined"] += 1
                    if await _first_or_stop(asyncio.ensure_future(_drain(ws)), stop):
                        stats["dropped_by_node"] += 1
                    await ws.close()

            await _workers(count, worker)

    return attack


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for msg in ws:
        if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            return


def slow_reader(network_id: int, ids: list[TxId], count: int = 4) -> Attacker:
    """``count`` peers that ask for ``ids`` (large transactions) again and again and never
    read the answers: what they make the node hold is bounded by its outbox."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        frame = wire.encode(Kind.REQUEST, b"".join((ids * wire.MAX_IDS)[: wire.MAX_IDS]))

        async def worker() -> None:
            while not stop.is_set():
                try:
                    ws = await RawWebSocket.connect(api + "/gossip")
                    await ws.handshake(network_id)
                    while not stop.is_set():
                        await ws.send(frame)
                        stats["requests"] += 1
                        await asyncio.sleep(0.005)
                except (ConnectionError, OSError, TimeoutError):
                    stats["dropped_by_node"] += 1
                    await _until(stop, 0.5)
                else:
                    ws.abort()

        await _workers(count, worker)

    return attack


def inv_flood(network_id: int, count: int = 2) -> Attacker:
    """Peers announcing made-up ids as fast as the node reads them."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        ws = await link.connect(session, api, _key(), network_id)
                        drain = asyncio.ensure_future(_drain(ws))
                        while not stop.is_set() and not drain.done():
                            for _ in range(64):
                                await ws.send_bytes(
                                    wire.encode(Kind.INV, os.urandom(wire.MAX_IDS * 32))
                                )
                            stats["ids"] += 64 * wire.MAX_IDS
                            await asyncio.sleep(0)
                        drain.cancel()
                        await ws.close()
                    except (ConnectionError, aiohttp.ClientError, OSError, TimeoutError):
                        stats["dropped_by_node"] += 1
                        await _until(stop, 0.2)

            await _workers(count, worker)

    return attack


def garbage(network_id: int, count: int = 4) -> Attacker:
    """Peers that prove a HELLO, then send a frame of random bytes (and are dropped)."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        rng = random.Random(7)
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        ws = await link.connect(session, api, _key(), network_id)
                        junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600)))
                        await ws.send_bytes(junk)
                        stats["frames"] += 1
                        await asyncio.wait_for(_drain(ws), 5)
                        await ws.close()
                    except (ConnectionError, aiohttp.ClientError, OSError, TimeoutError):
                        stats["errors"] += 1
                    await _until(stop, 0.05)

            await _workers(count, worker)

    return attack


def subscription_flood(streams: int = 8, topics: int = 256) -> Attacker:
    """Event streams that subscribe and unsubscribe ``topics`` address topics a frame,
    as fast as the node takes them."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        # Made once: the attacker's own CPU should not be what slows the node's host.
        frames = []
        for _ in range(16):
            batch = ["address:" + encode_address(os.urandom(32)) for _ in range(topics)]
            frames.append(
                (orjson.dumps({"subscribe": batch}), orjson.dumps({"unsubscribe": batch}))
            )
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        async with session.ws_connect(
                            f"{api}/api/v1/events?topics=confirmations"
                        ) as ws:
                            while not stop.is_set():
                                for add, remove in frames:
                                    await ws.send_bytes(add)
                                    await ws.send_bytes(remove)
                                    stats["frames"] += 2
                                    await asyncio.sleep(0)
                    except (ConnectionError, aiohttp.ClientError, OSError, TimeoutError):
                        stats["refused"] += 1
                        await _until(stop, 0.5)

            await _workers(streams, worker)

    return attack


def spam_issuer(
    params: NetworkParams, tips: Callable[[], Awaitable[tuple[TxId, TxId]]]
) -> Attacker:
    """Transactions with valid work and signatures, each by a fresh key, spending output
    ids that do not exist (contested-output spam), gossiped as fast as work allows."""

    async def attack(api: str, stop: asyncio.Event, stats: Stats) -> None:
        async with aiohttp.ClientSession() as session:
            ws = await link.connect(session, api, _key(), params.network_id)
            drain = asyncio.ensure_future(_drain(ws))
            while not stop.is_set() and not drain.done():
                trunk, branch = await tips()
                victim = OutputId(TxId(os.urandom(32)), 0)
                key = _key()
                tx = build(
                    key,
                    params,
                    trunk=trunk,
                    branch=branch,
                    timestamp=int(time.time() * 1000),
                    inputs=[victim],
                    payments={key.address: 1},
                )
                tx = await asyncio.to_thread(solve, tx, params)
                await ws.send_bytes(wire.encode(Kind.TX, tx.encode()))
                stats["sent"] += 1
            drain.cancel()
            await ws.close()

    return attack
