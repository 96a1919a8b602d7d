"""The events websocket holds against hostile clients (issue 12, findings 5 and 11), on an
in-process node: frames and topics are capped and refused before any address is decoded,
streams per client are capped (503 with Retry-After), a slow consumer is dropped with a gap
notice, publishing costs the matching subscribers only, and every event names the node's
boot (its epoch) so that a resume across a restart is told so."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tangle import encode_address
from tangle.node import events as events_module
from tangle.node import events_ws as events_module_ws
from tangle.node.api import make_app
from tangle.node.config import NodeConfig
from tangle.node.events import EventLog
from tangle.node.node import Node

PROMPTLY = 2.0
"""Seconds a refusal may take (a 45k-topic frame held the loop for ~4 s before)."""


def _config(data_dir: Path) -> NodeConfig:
    return NodeConfig(
        dev=True,
        data_dir=data_dir,
        base_difficulty=0,
        prune_age=0,
        confirm_interval=10_000,
        liveness_interval=10_000,
        node_seed=b"\x03" * 32,
    )


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Node, TestClient[Any, Any]]]:
    node = Node(_config(tmp_path))
    await node.start()
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(node), host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield node, client
    finally:
        await client.close()
        await node.stop()


def _topic() -> str:
    return "address:" + encode_address(os.urandom(32))


async def _next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), PROMPTLY)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    body = orjson.loads(msg.data)
    assert isinstance(body, dict)
    return body


# -- finding 5: subscription floods ---------------------------------------------------------


def test_publish_reaches_only_the_matching_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subscribers are indexed by topic: an event costs its own subscribers, not everyone."""
    log = EventLog()
    offered: list[object] = []
    real = events_module.Subscriber.offer

    def offer(self: events_module.Subscriber, event: events_module.Event) -> None:
        offered.append(self)
        real(self, event)

    monkeypatch.setattr(events_module.Subscriber, "offer", offer)
    others = [log.subscribe({f"address:other{n}"}) for n in range(1000)]
    mine = log.subscribe({"confirmations"})
    log.publish("confirmations", {"id": "00"})
    assert offered == [mine], f"{len(offered)} subscribers offered an event meant for one"
    assert mine.queue.qsize() == 1
    assert all(s.queue.empty() for s in others)


async def test_a_flood_frame_is_refused_before_it_is_parsed(
    served: tuple[Node, TestClient[Any, Any]],
) -> None:
    """8 frames of 45,000 valid address topics (3.3 MB each) held /info for 5 s: now each
    is refused by its size alone (close code 1009), and /info answers promptly."""
    _, client = served
    frame = orjson.dumps({"subscribe": [_topic()] * 45_000})
    sockets = [await client.ws_connect("/api/v1/events") for _ in range(8)]
    try:
        for ws in sockets:
            await ws.send_str(frame.decode())
        started = time.monotonic()
        info = await client.get("/api/v1/info")
        assert info.status == 200
        took = time.monotonic() - started
        assert took < PROMPTLY, f"/api/v1/info took {took:.2f} s during the flood"
        for ws in sockets:
            msg = await asyncio.wait_for(ws.receive(), PROMPTLY)
            assert msg.type is aiohttp.WSMsgType.CLOSE, msg
            assert msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG, msg
    finally:
        for ws in sockets:
            await ws.close()


async def test_subscription_churn_cannot_hold_the_loop(
    served: tuple[Node, TestClient[Any, Any]],
) -> None:
    """8 streams subscribing and dropping 256 valid addresses, 40 times each: 82,000
    bech32m checks (~8 s of CPU) were done back to back; now they are spread at 2048 a
    second node-wide, each frame yields, and /info answers promptly meanwhile."""
    _, client = served
    topics = [_topic() for _ in range(256)]
    on = orjson.dumps({"subscribe": topics}).decode()
    off = orjson.dumps({"unsubscribe": topics}).decode()
    sockets = [await client.ws_connect("/api/v1/events?topics=conflicts") for _ in range(8)]
    try:
        for ws in sockets:
            for _ in range(40):
                await ws.send_str(on)
                await ws.send_str(off)
        await asyncio.sleep(0.05)  # the node starts on them
        started = time.monotonic()
        info = await client.get("/api/v1/info")
        took = time.monotonic() - started
        assert info.status == 200
        assert took < 1.0, f"/api/v1/info took {took:.2f} s during the churn"
    finally:
        for ws in sockets:
            await ws.close()


async def test_topics_per_stream_are_capped(served: tuple[Node, TestClient[Any, Any]]) -> None:
    """256 topics a stream; a frame that would go past it is refused whole, before any of
    its addresses is decoded, and says so; frames are answered only when refused."""
    node, client = served
    cap = 256
    mine = _topic()
    async with client.ws_connect("/api/v1/events?topics=confirmations") as ws:
        await ws.send_str(orjson.dumps({"subscribe": [_topic() for _ in range(cap - 1)]}).decode())
        await ws.send_str(orjson.dumps({"subscribe": [mine]}).decode())
        error = await _next_json(ws)
        assert error["type"] == "error"
        assert error["code"] == "too_many"
        assert error["message"] == f"topics: expected at most {cap} topics per stream, got 257"
        # A swap keeps it at 256 (no answer); the next error is the next frame's.
        swap = {"unsubscribe": ["confirmations"], "subscribe": [mine]}
        await ws.send_str(orjson.dumps(swap).decode())
        await ws.send_str(orjson.dumps({"subscribe": "confirmations"}).decode())
        error = await _next_json(ws)
        assert error["message"] == "subscribe: expected a list of topics, got str"
        node.events.publish(mine, {"event": "received"})
        assert (await _next_json(ws))["topic"] == mine
    # In the query too: counted before any topic is looked at.
    answer = await client.get("/api/v1/events", params={"topics": ",".join(map(str, range(300)))})
    assert answer.status == 400
    body = await answer.json()
    assert body["error"]["code"] == "too_many"
    assert body["error"]["message"] == f"topics: expected at most {cap} topics per stream, got 300"


async def test_streams_per_client_are_capped(served: tuple[Node, TestClient[Any, Any]]) -> None:
    """A client (one remote address) holds at most 8 streams; the 9th is answered 503 with
    Retry-After before the upgrade; closing one makes room."""
    _, client = served
    sockets = [await client.ws_connect("/api/v1/events") for _ in range(8)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/api/v1/events")
        assert refused.value.status == 503
        assert refused.value.headers is not None
        assert int(refused.value.headers["Retry-After"]) >= 1
        await sockets.pop().close()
        await asyncio.sleep(0.1)  # the handler sees the close and lets the stream go
        sockets.append(await client.ws_connect("/api/v1/events"))
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_refused_stream_says_why(served: tuple[Node, TestClient[Any, Any]]) -> None:
    _, client = served
    sockets = [await client.ws_connect("/api/v1/events") for _ in range(8)]
    try:
        answer = await client.get("/api/v1/events", headers={"Upgrade": "websocket"})
        body = await answer.json()
        assert answer.status == 503
        assert body["error"]["code"] == "overloaded"
        assert "expected at most 8 event streams per client" in body["error"]["message"]
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_slow_consumer_is_dropped_with_a_gap_notice(
    served: tuple[Node, TestClient[Any, Any]],
) -> None:
    """A client 10,000 events behind gets a gap notice at once, saying where to resume
    from (what was queued is dropped, not sent first), then a close (1013)."""
    node, client = served
    async with client.ws_connect("/api/v1/events?topics=confirmations") as ws:
        await asyncio.sleep(0.1)  # the handler is subscribed
        for n in range(events_module.SUBSCRIBER_QUEUE + 10):
            node.events.publish("confirmations", {"id": f"{n:064x}"})  # no await: no drain
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                received.append(orjson.loads(msg.data))
        notice = received[-1]
        assert notice.get("type") == "gap", f"no gap notice: the last message was {notice}"
        assert len(received) <= 1 + events_module_ws.BATCH, f"{len(received) - 1} sent first"
        last = received[-2]["seq"] if len(received) > 1 else 0
        assert notice["reason"] == "too_slow"
        assert notice["missed_from"] == last + 1
        assert notice["resume"] == f"{node.events.epoch}:{last}"
        assert ws.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER


# -- finding 11: events after a restart ----------------------------------------------------


async def test_every_event_names_the_epoch(served: tuple[Node, TestClient[Any, Any]]) -> None:
    node, client = served
    async with client.ws_connect("/api/v1/events?topics=confirmations&since=0") as ws:
        node.events.publish("confirmations", {"id": "00"})
        event = await _next_json(ws)
    epoch = node.events.epoch
    assert event["epoch"] == epoch
    assert len(epoch) == 16
    assert int(epoch, 16) >= 0
    assert EventLog().epoch != EventLog().epoch  # a boot id: another one at every start


async def test_since_with_the_epoch_resumes_and_another_epoch_is_a_restart(
    served: tuple[Node, TestClient[Any, Any]],
) -> None:
    node, client = served
    for n in range(5):
        node.events.publish("confirmations", {"id": f"{n:02x}"})
    epoch = node.events.epoch
    async with client.ws_connect(f"/api/v1/events?topics=confirmations&since={epoch}:3") as ws:
        assert [(await _next_json(ws))["seq"] for _ in range(2)] == [4, 5]
    other = "0123456789abcdef" if epoch != "0123456789abcdef" else "fedcba9876543210"
    async with client.ws_connect(f"/api/v1/events?topics=confirmations&since={other}:5000") as ws:
        notice = await _next_json(ws)
        assert notice["type"] == "gap"
        assert notice["reason"] == "restarted"
        assert notice["epoch"] == epoch
        assert f"expected epoch {epoch}, got {other}" in notice["message"]
        assert notice["oldest_kept"] == 1
        # then everything this boot still holds, from its first event
        assert [(await _next_json(ws))["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_a_plain_since_ahead_of_the_log_is_a_gap_not_a_silent_hole(
    served: tuple[Node, TestClient[Any, Any]],
) -> None:
    """since=5000 on a node whose log ends at 2 (it restarted): a gap notice, then the
    events from 1, and the live ones after (they were all dropped as 'old' before)."""
    node, client = served
    node.events.publish("confirmations", {"id": "01"})
    node.events.publish("confirmations", {"id": "02"})
    async with client.ws_connect("/api/v1/events?topics=confirmations&since=5000") as ws:
        notice = await _next_json(ws)
        assert notice.get("type") == "gap", f"no gap notice, got {notice}"
        assert notice["reason"] == "ahead"
        assert "expected since at most 2, got 5000" in notice["message"]
        assert [(await _next_json(ws))["seq"] for _ in range(2)] == [1, 2]
        node.events.publish("confirmations", {"id": "03"})
        assert (await _next_json(ws))["seq"] == 3


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("yesterday", "got 'yesterday'"),
        ("-5", "got '-5'"),
        ("1" * 40, "got '11111111111111111111..."),
        ("abc:5", "EPOCH: expected 16 hex digits, got 'abc'"),
        ("0123456789abcdef:x", "SEQ: expected up to 19 decimal digits, got 'x'"),
        ("٣", "got '٣'"),
    ],
)
async def test_a_bad_since_is_refused_precisely(
    served: tuple[Node, TestClient[Any, Any]], since: str, message: str
) -> None:
    _, client = served
    answer = await client.get("/api/v1/events", params={"since": since})
    assert answer.status == 400
    body = await answer.json()
    assert body["error"]["code"] == "invalid_field"
    assert body["error"]["message"].startswith("since: expected SEQ or EPOCH:SEQ")
    assert message in body["error"]["message"]


# -- finding 12 (part): the faucet's amount ----------------------------------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("²", "expected a decimal string of ASCII digits, got '²'"),
        ("٣", "expected a decimal string of ASCII digits, got '٣'"),
        ("1" * 5000, "expected at most 19 digits, got 5000"),
        (" 5", "expected a decimal string of ASCII digits, got ' 5'"),
        ("1" + "0" * 18 + "1", "expected at most 19 digits, got 20"),
        ("9" * 19, "expected at most 1000000000000000000 (the supply), got 9999999999999999999"),
        (-3, "expected a decimal string of ASCII digits, got -3"),
        (None, "missing; expected a decimal string of ASCII digits"),
        (..., "missing; expected a decimal string of ASCII digits"),  # no amount at all
        ([7] * 10_000, "expected a decimal string of ASCII digits, got [" + "7, " * 13 + "..."),
        ({"a": "x" * 9000}, "expected a decimal string of ASCII digits, got {'a': 'x"),
    ],
)
async def test_the_faucet_refuses_a_bad_amount_with_400(
    served: tuple[Node, TestClient[Any, Any]], amount: object, message: str
) -> None:
    _, client = served
    body: dict[str, object] = {"address": encode_address(os.urandom(32))}
    if amount is not ...:
        body["amount"] = amount
    answer = await client.post("/api/v1/faucet", data=orjson.dumps(body))
    assert answer.status == 400, await answer.text()
    error = (await answer.json())["error"]
    assert error["code"] == "invalid_field"
    assert error["message"].startswith(f"amount: {message}")
    assert len(error["message"]) <= 120, "the refusal echoes the whole input"


# -- the pieces -------------------------------------------------------------------------


def test_streams_come_and_go_without_leaving_anything_behind() -> None:
    """Every map a client grows shrinks back: the topic index and the per-client counts."""
    log = EventLog()
    for n in range(3000):
        stream = log.subscribe({"confirmations", f"address:x{n}"}, client=f"10.0.0.{n % 250}")
        log.update(stream, add={f"address:y{n}"}, remove={"confirmations"})
        log.unsubscribe(stream)
        log.unsubscribe(stream)  # twice: harmless
    assert log._by_topic == {}
    assert log._clients == {}
    assert log._subscribers == set()


def test_a_client_is_its_address_or_its_ipv6_64() -> None:
    from tangle.node.events_ws import client_key

    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown"


async def test_the_check_budget_spreads_checks_at_its_rate() -> None:
    from tangle.node.events_ws import CheckBudget

    now = [0.0]
    slept: list[float] = []
    budget = CheckBudget(rate=100, clock=lambda: now[0])
    await budget.take(100)  # the burst: no wait
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        await real_sleep(0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "sleep", sleep)
        await budget.take(50)
    assert slept == [pytest.approx(0.5)]


# -- review: stalled readers, replay cost, leaked tasks, address case -----------------------


@pytest.mark.parametrize(
    ("deadline", "buffer", "live"),
    [(0.5, 1 << 20, True), (0.5, 1 << 20, False), (60.0, 8192, False)],
)
async def test_a_client_that_stops_reading_is_dropped(
    served: tuple[Node, TestClient[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    deadline: float,
    buffer: int,
    live: bool,
) -> None:
    """A client that never reads a 100,000-event replay was held forever (a send waited on
    the full socket): a frame not gone within the deadline, or a write buffer past its
    cap, aborts it (and its too_slow close, live events piling up meanwhile)."""
    node, client = served
    monkeypatch.setattr(events_module_ws, "SEND_DEADLINE", deadline)
    monkeypatch.setattr(events_module_ws, "MAX_WRITE_BUFFER", buffer)
    for n in range(100_000):
        node.events.publish("confirmations", {"id": f"{n:064x}"})
    raw = socket.socket()  # upgrades, then never reads (a small receive buffer fills fast)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", client.port or 0))
        key = base64.b64encode(os.urandom(16)).decode()
        raw.send(
            b"GET /api/v1/events?topics=confirmations&since=0 HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            + f"Sec-WebSocket-Key: {key}\r\n\r\n".encode()
        )
        await asyncio.sleep(0.1)
        assert node.events._subscribers, "the stream never started"
        for n in range(events_module.SUBSCRIBER_QUEUE + 10 if live else 0):  # pile up
            node.events.publish("confirmations", {"id": f"{n:064x}"})
        for _ in range(int((deadline + 3) / 0.05)):
            if not node.events._subscribers:
                break
            await asyncio.sleep(0.05)
        assert not node.events._subscribers, f"still held {deadline + 3} s on"
        assert node.events._clients == {}, "the client's slot is still held"
    finally:
        raw.close()


def test_a_resume_costs_what_it_replays_not_the_whole_log() -> None:
    """since=last-10 on a full log of 100,000 scanned them all (7-31 ms a connection)."""
    log = EventLog(capacity=100_000)
    for n in range(150_000):
        log.publish("transactions" if n % 2 else "confirmations", {"n": n})
    took = []
    for _ in range(5):
        started = time.perf_counter()
        backlog, _ = log.replay(log.last_seq - 10, ["confirmations"])
        took.append(time.perf_counter() - started)
    assert [e.seq for e in backlog] == list(range(log.last_seq - 9, log.last_seq + 1, 2))
    assert min(took) < 0.001, f"a 10-event replay took {min(took) * 1000:.1f} ms"
    # and the edges: from before the log (a gap), from its first, nothing after the last
    assert log.replay(0, ["confirmations"])[1] == log.oldest_seq
    first, _ = log.replay(log.oldest_seq - 1, ["confirmations", "transactions"])
    assert [e.seq for e in first] == list(range(log.oldest_seq, log.last_seq + 1))
    assert log.replay(log.last_seq, ["confirmations"]) == ([], None)
    started = time.perf_counter()  # a topic with no events in the log costs no walk
    assert log.replay(log.oldest_seq - 1, ["conflicts"]) == ([], None)
    assert time.perf_counter() - started < 0.001
    assert sum(log._kept.values()) == 100_000


async def test_a_stream_leaves_no_task_behind(served: tuple[Node, TestClient[Any, Any]]) -> None:
    """Each stream's end left its queue getter pending ("Task was destroyed...")."""
    _, client = served
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        for _ in range(20):
            async with client.ws_connect("/api/v1/events?topics=confirmations"):
                pass
        await asyncio.sleep(0.3)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    leaked = [c["message"] for c in reported if "destroyed" in c["message"]]
    assert not leaked, f"{len(leaked)} tasks leaked: {leaked[0]}"


async def test_an_uppercase_address_topic_matches(
    served: tuple[Node, TestClient[Any, Any]],
) -> None:
    """An all-uppercase address (valid bech32m) never matched: events name it lowercase."""
    node, client = served
    mine, other = _topic(), _topic()
    upper = "address:" + mine.removeprefix("address:").upper()
    frame = {"subscribe": ["address:" + other.removeprefix("address:").upper()]}
    async with client.ws_connect(f"/api/v1/events?topics={upper}") as ws:
        await ws.send_str(orjson.dumps(frame).decode())
        await asyncio.sleep(0.1)
        node.events.publish(mine, {"event": "received"})
        node.events.publish(other, {"event": "received"})
        assert (await _next_json(ws))["topic"] == mine
        assert (await _next_json(ws))["topic"] == other
    mixed = "address:" + mine.removeprefix("address:")[:6].upper() + mine[14:]
    answer = await client.get("/api/v1/events", params={"topics": mixed})
    assert answer.status == 400
    assert (await answer.json())["error"]["code"] == "invalid_address"
