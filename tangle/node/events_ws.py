"""``GET /api/v1/events``: the websocket of :mod:`tangle.node.events`, held against hostile
clients.

``?topics=a,b&since=SEQ|EPOCH:SEQ``; then frames ``{"subscribe": [...]}`` /
``{"unsubscribe": [...]}``, each answered only when refused (``{"type": "error", "code",
"message"}``). What a client asks for is refused early and cheaply, with what was expected
and what came:

- before the upgrade: a bad ``since`` or topic (400), too many topics (400), a client with 8
  streams open or a node with 1024 (503 with ``Retry-After``);
- frames under ``MAX_FRAME`` bytes (32 KiB, so 32,767 at most: 256 address topics take
  ~19 KB): aiohttp refuses one of 32,768 or more from its header, before reading it, and
  closes with 1009;
- an address topic costs a bech32m check (~110 us, measured): the node spends at most
  ``CHECKS_PER_SECOND`` (2048, ~0.23 s of CPU) a second on them, shared by every stream in
  turn, so a flood of subscriptions delays subscriptions, not the node;
- the reader yields to the loop after each frame, the sender every ``BATCH`` events;
- a client that stops reading is dropped: a frame that does not leave within
  ``SEND_DEADLINE`` (5 s), or more than ``MAX_WRITE_BUFFER`` bytes waiting unsent, and the
  connection is aborted (a close would wait for the full buffer to drain) and its stream
  let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from tangle.address import decode_address
from tangle.errors import AddressError
from tangle.node.errors import Rejected
from tangle.node.events import Event, EventLog, Subscriber, parse_since
from tangle.schema import ADDRESS_TOPIC, DEFAULT_TOPICS, ErrorCode

__all__ = [
    "EVENTS",
    "MAX_FRAME",
    "CheckBudget",
    "Sender",
    "Stalled",
    "canonical",
    "check_topic",
    "client_key",
    "install",
]

MAX_FRAME = 32 * 1024
"""Bytes a frame a client sends stays under (aiohttp refuses one of this size; a frame of
256 address topics is ~19 KB)."""
CHECKS_PER_SECOND = 2048
"""Address topics the node checks per second, all streams together (~110 us each)."""
BATCH = 256
"""Events sent between two yields to the loop (a replay may be 100,000)."""
HEARTBEAT = 20.0
"""Seconds between pings; a client that answers none in half of it is dropped."""
SEND_DEADLINE = 5.0
"""Seconds one frame may wait to leave; a client that reads nothing for that long is gone."""
MAX_WRITE_BUFFER = 1 << 20
"""Bytes held unsent for one stream (the kernel's buffers are full): past it, it is gone.
aiohttp waits for a drain every 256 KiB written, so a client that reads, however slowly,
stays well under it; past it, sends are not waiting and the buffer would only grow."""


class Stalled(Exception):
    """The client does not read what it is sent: its connection is aborted."""


class Sender:
    """Sends frames on ``ws``, each within ``SEND_DEADLINE`` and ``MAX_WRITE_BUFFER``.

    Raises:
        Stalled: from :meth:`send` and :meth:`close`, when the client does not read.
    """

    __slots__ = ("transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self.transport = transport

    async def send(self, data: bytes) -> None:
        buffered = self.transport.get_write_buffer_size() if self.transport else 0
        if buffered > MAX_WRITE_BUFFER:
            raise Stalled(f"expected at most {MAX_WRITE_BUFFER} bytes unsent, {buffered} are")
        try:
            async with asyncio.timeout(SEND_DEADLINE):
                await self.ws.send_bytes(data)
        except TimeoutError:
            raise Stalled(f"a frame waited {SEND_DEADLINE} s to leave") from None

    async def close(self, code: int, message: bytes) -> None:
        try:
            async with asyncio.timeout(SEND_DEADLINE):
                await self.ws.close(code=code, message=message)
        except TimeoutError:
            raise Stalled(f"the close waited {SEND_DEADLINE} s to leave") from None
        if self.transport is not None and self.transport.get_write_buffer_size():
            raise Stalled("the client did not read what it was sent before the close")

    def abort(self) -> None:
        """Drop the connection now, and what it holds unsent."""
        if self.transport is not None:
            self.transport.abort()


class CheckBudget:
    """A token bucket of address checks, served in turn (an asyncio lock is FIFO)."""

    def __init__(
        self, rate: float = CHECKS_PER_SECOND, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self, count: int) -> None:
        if count <= 0:
            return
        async with self._lock:
            self._refill()
            if self._tokens < count:
                await asyncio.sleep((count - self._tokens) / self.rate)
                self._refill()
            self._tokens -= count

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


EVENTS = web.AppKey("events", EventLog)
BUDGET = web.AppKey("topic_checks", CheckBudget)


def install(app: web.Application, log: EventLog) -> None:
    """Serve ``log`` at ``/api/v1/events`` on ``app``."""
    app[EVENTS] = log
    app[BUDGET] = CheckBudget()
    app.router.add_get("/api/v1/events", events)


def client_key(remote: str | None) -> str:
    """Whose stream it is: the remote IPv4 address, or the /64 of an IPv6 one (one host
    holds a whole /64). Behind a proxy every client is the proxy."""
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip.exploded}/64", strict=False))
    return str(ip)


def check_topic(topic: str) -> None:
    if topic in DEFAULT_TOPICS:
        return
    if topic.startswith(ADDRESS_TOPIC):
        text = topic.removeprefix(ADDRESS_TOPIC)
        decode_address(text)  # zero padding bits and one case: lowercase is the only other
        expected = text.lower()
        if text != expected:  # events name the lowercase one: this would match nothing
            raise Rejected(
                ErrorCode.INVALID_ADDRESS,
                f"topic: expected the address as {ADDRESS_TOPIC}{expected}, got {topic[:100]!r}",
                400,
            )
        return
    shown = topic if len(topic) <= 100 else topic[:100] + "..."
    raise Rejected(
        ErrorCode.INVALID_TOPIC,
        f"topic: expected transactions, confirmations, conflicts or address:<tgl1...>, "
        f"got {shown!r}",
        400,
    )


def canonical(topic: str) -> str:
    """The topic as events name it: an address in lowercase, as the node encodes it.

    bech32m allows an all-uppercase address (the same address, e.g. for QR codes); events
    name the lowercase one, so an uppercase topic would be followed and never match.
    Mixed case is left alone (the check refuses it)."""
    if topic.startswith(ADDRESS_TOPIC):
        text = topic.removeprefix(ADDRESS_TOPIC)
        if text.isupper():
            return ADDRESS_TOPIC + text.lower()
    return topic


def _checks(topics: Iterable[str]) -> int:
    return sum(1 for t in topics if t.startswith(ADDRESS_TOPIC))


async def _follow(
    log: EventLog,
    budget: CheckBudget,
    subscriber: Subscriber,
    add: Iterable[str],
    remove: Iterable[str] = (),
) -> None:
    """Count first (cheap), then wait for the checks' budget, then check and follow."""
    add, remove = [canonical(t) for t in add], [canonical(t) for t in remove]
    await budget.take(_checks(log.added(subscriber, add, remove)))
    log.update(subscriber, add, remove, check=check_topic)


async def events(request: web.Request) -> web.StreamResponse:
    """The stream: refused (400, 503) before the upgrade, then a gap notice if some of
    what ``since`` asks for is lost, the backlog, and live events."""
    log, budget = request.app[EVENTS], request.app[BUDGET]
    text = request.query.get("since")
    since = parse_since(text) if text is not None else None
    wanted = [t for t in request.query.get("topics", "").split(",") if t] or DEFAULT_TOPICS
    subscriber = log.subscribe((), client_key(request.remote))  # 503 when full
    try:
        await _follow(log, budget, subscriber, wanted)
        # No await from here to the replay's snapshot: nothing falls between the two.
        notice, backlog, last = log.resume(since, subscriber.topics)
        # timeout: how long a close waits for the client's (a slow client's is dropped)
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT, max_msg_size=MAX_FRAME, timeout=SEND_DEADLINE
        )
        await ws.prepare(request)
        sender = Sender(ws, request.transport)
        try:
            await _stream(sender, log, budget, subscriber, notice, backlog, last)
        except ConnectionError:  # the client went away mid-send
            pass
        except Stalled:  # the client does not read: let it go now, not when it drains
            sender.abort()
    finally:
        log.unsubscribe(subscriber)
    return ws


async def _stream(
    sender: Sender,
    log: EventLog,
    budget: CheckBudget,
    subscriber: Subscriber,
    notice: dict[str, Any] | None,
    backlog: list[Event],
    last: int,
) -> None:
    ws = sender.ws
    if notice is not None:
        await sender.send(orjson.dumps(notice))
    for n, event in enumerate(backlog, 1):
        if subscriber.overflowed:  # live events piled up meanwhile: the client is too slow
            await _too_slow(sender, log, last)
            return
        await sender.send(event.raw())
        last = event.seq
        if n % BATCH == 0:
            await asyncio.sleep(0)
    reader = asyncio.ensure_future(_read_subscriptions(sender, log, budget, subscriber))
    getter: asyncio.Future[Event | None] | None = None
    try:
        while not ws.closed:
            getter = asyncio.ensure_future(subscriber.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                return
            batch = [getter.result()]
            while len(batch) < BATCH and not subscriber.queue.empty():
                batch.append(subscriber.queue.get_nowait())
            for live in batch:
                if live is None or subscriber.overflowed:  # the client is too slow
                    await _too_slow(sender, log, last)
                    return
                if live.seq > last:
                    await sender.send(live.raw())
                    last = live.seq
    finally:  # neither task outlives the stream ("Task was destroyed but it is pending")
        reader.cancel()
        if getter is not None:
            getter.cancel()
        failed = reader.exception() if reader.done() and not reader.cancelled() else None
        if isinstance(failed, Stalled):  # an error frame could not leave
            sender.abort()


async def _too_slow(sender: Sender, log: EventLog, last: int) -> None:
    """The gap notice (what is queued is dropped: the client resumes from the log), then
    a close (1013: try again later)."""
    gap = log.slow_notice(last)
    await sender.send(orjson.dumps(gap))
    reason = f"too slow: reconnect with since={gap['resume']}"
    await sender.close(WSCloseCode.TRY_AGAIN_LATER, reason.encode())


async def _read_subscriptions(
    sender: Sender, log: EventLog, budget: CheckBudget, subscriber: Subscriber
) -> None:
    async for msg in sender.ws:
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            try:
                add, remove = _frame(msg.data)
                await _follow(log, budget, subscriber, add, remove)
            except Rejected as exc:
                await _refuse(sender, exc.code, exc.message)
            except AddressError as exc:
                await _refuse(sender, ErrorCode.INVALID_ADDRESS, str(exc))
        await asyncio.sleep(0)  # buffered frames come without a wait: let others run


async def _refuse(sender: Sender, code: str, message: str) -> None:
    """Raises Stalled if the client does not read (the stream's loop aborts it)."""
    with contextlib.suppress(ConnectionError):  # gone: the stream's loop sees it close
        await sender.send(orjson.dumps({"type": "error", "code": code, "message": message}))


def _frame(data: str | bytes) -> tuple[list[str], list[str]]:
    """A subscription frame's topics to follow and to drop, checked before any is used."""
    if len(data) >= MAX_FRAME:  # aiohttp refuses these already; kept in case it is not
        raise _bad(ErrorCode.TOO_LARGE, f"frame: expected under {MAX_FRAME} bytes, got {len(data)}")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _bad(ErrorCode.INVALID_JSON, f"frame: expected JSON, got {exc}") from None
    if not isinstance(body, dict):
        raise _bad(
            ErrorCode.INVALID_JSON, f"frame: expected a JSON object, got {type(body).__name__}"
        )
    unknown = [k[:40] for k in body if k not in ("subscribe", "unsubscribe")]
    if unknown:
        raise _bad(
            ErrorCode.INVALID_FIELD,
            f"frame: expected only subscribe and unsubscribe, got {unknown[:3]!r}",
        )
    return _topics(body, "subscribe"), _topics(body, "unsubscribe")


def _topics(body: dict[str, object], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise _bad(
            ErrorCode.INVALID_FIELD,
            f"{name}: expected a list of topics, got {type(value).__name__}",
        )
    for topic in value:
        if not isinstance(topic, str):
            raise _bad(
                ErrorCode.INVALID_FIELD, f"{name}: expected topic strings, got {topic!r:.40}"
            )
    return value


def _bad(code: str, message: str) -> Rejected:
    return Rejected(code, message, 400)
