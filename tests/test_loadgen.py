"""The load generator counts what the network did, not its own mistakes: its pieces, and
a whole run against a scripted node that refuses, drops connections and confirms."""

from __future__ import annotations

import asyncio
import json
import math
import random

import orjson
import pytest
from aiohttp import web

from benchmarks import jsonout
from benchmarks.loadgen import (
    CLIENT_BACKOFF_MAX,
    TipQueue,
    client_backoff,
    drive,
    fate_unknown,
    needs_rebuild,
    outcomes,
    parse_submit_stages,
    percentiles,
    prebuild,
)
from tangle import OutputId, TxId, decode
from tangle.node.genesis import dev_genesis


def tid(n: int) -> TxId:
    return TxId(n.to_bytes(32, "big"))


def test_parse_submit_stages_reads_the_summary_and_ignores_the_rest() -> None:
    text = "\n".join(
        [
            "# HELP tangle_submit_stage_seconds Seconds per stage",
            "# TYPE tangle_submit_stage_seconds summary",
            'tangle_submit_stage_seconds_sum{stage="decode"} 0.5',
            'tangle_submit_stage_seconds_count{stage="decode"} 1000',
            'tangle_submit_stage_seconds_sum{stage="commit"} 2',
            'tangle_submit_stage_seconds_count{stage="commit"} 0',
            'tangle_submit_stage_seconds_created{stage="decode"} 17',
            "tangle_other_total 3",
        ]
    )
    assert parse_submit_stages(text) == {"decode": 0.5}


def test_outcomes_count_by_first_send_and_confirm_within_grace() -> None:
    a, b, c, d, e = (tid(n) for n in range(5))
    first_sent = {a: 0.5, b: 1.0, c: 2.0, d: 9.5, e: 12.0}
    acked = {a: 0.6, b: 1.5, c: 2.1, d: 11.0, e: 12.1}  # d: sent in, acked after the window
    confirmed = {a: 0.55, b: 3.0, c: 9.0, e: 12.5}  # a: the stream beat the answer
    seen = outcomes(first_sent, acked, confirmed, began=0.0, end=10.0, grace=5.0)
    assert seen.accepted == [a, b, c, d]  # e was first sent after the window
    assert seen.confirmed == [a, b]
    assert seen.late == [c]
    assert seen.never == [d]
    assert seen.latency_ms == pytest.approx([50.0, 2000.0])
    assert seen.ack_latency_ms == pytest.approx([0.0, 1500.0])  # clamped, never negative


def test_needs_rebuild_and_fate_unknown() -> None:
    plan = prebuild(20.0, 1.0, devices=2, nodes=1)
    first = plan.devices[0]
    planned = decode(first.payments[0].raw)
    assert not needs_rebuild(planned, first.coin, set())
    assert needs_rebuild(planned, OutputId(tid(7), 0), set())
    assert needs_rebuild(planned, first.coin, {planned.trunk})
    assert needs_rebuild(planned, first.coin, {planned.branch})
    assert fate_unknown(0, "client_error:ServerDisconnectedError")
    assert fate_unknown(503, "storage_unavailable")
    assert fate_unknown(500, "internal")
    assert not fate_unknown(503, "overloaded")
    assert not fate_unknown(422, "unknown_parent")
    assert not fate_unknown(400, "bad_signature")


def test_tip_queue_offers_the_oldest_unapproved_and_takes_back_what_was_not_used() -> None:
    queue, rng = TipQueue(), random.Random(1)
    assert queue.take(5.0, set(), rng) == (None, None)
    for n in range(3):
        queue.add(float(n), tid(n))
    assert queue.take(0.5, {tid(0)}, rng) == (tid(0), None)  # approved: one of the newest
    got, entry = queue.take(1.5, {tid(0)}, rng)
    assert got == tid(1)
    assert entry is not None
    queue.give_back(entry)
    assert queue.take(1.5, {tid(0)}, rng)[0] == tid(1)


def test_client_backoff_doubles_with_jitter_up_to_a_bound() -> None:
    rng = random.Random(3)
    waits = [client_backoff(k, rng) for k in range(12)]
    assert all(0 < w <= 1.5 * CLIENT_BACKOFF_MAX for w in waits)
    assert waits[-1] >= 0.5 * CLIENT_BACKOFF_MAX


def test_no_samples_is_null_in_json_not_nan() -> None:
    empty = percentiles([])
    assert math.isnan(empty["p50"])
    text = jsonout.dumps({"latency_ms": empty, "rows": [1.0, math.inf]})
    assert json.loads(text) == {
        "latency_ms": {"p50": None, "p90": None, "p99": None},
        "rows": [1.0, None],
    }


class ScriptedNode:
    """A node's API as the generator uses it: cuts its event stream once, refuses the
    first payment once with
    ``unknown_parent``, drops the connection on the first send of the ``drop_nth``
    transaction it hears of, accepts the rest and confirms them on its event stream at
    once."""

    def __init__(self, refuse: TxId, drop_nth: int) -> None:
        self.refuse, self.drop_nth = refuse, drop_nth
        self.dropped: TxId | None = None
        self.genesis = dev_genesis().id
        self.accepted: dict[TxId, tuple[TxId, TxId]] = {}
        self.sends: list[TxId] = []
        self.stream: asyncio.Queue[TxId] = asyncio.Queue()
        self.seq = 0
        self.streams: list[str] = []
        """The query of each events connection (the first is cut after 3 events)."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/transactions", self.submit)
        app.router.add_post("/api/v1/transactions/statuses", self.statuses)
        app.router.add_get("/api/v1/tips", self.tips)
        app.router.add_get("/api/v1/events", self.events)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def submit(self, request: web.Request) -> web.Response:
        tx = decode(await request.read())
        self.sends.append(tx.id)
        if len(set(self.sends)) == self.drop_nth and self.dropped is None:
            self.dropped = tx.id
            assert request.transport is not None
            request.transport.close()  # the client sees the connection go
            return web.Response(status=500)
        if tx.id == self.refuse and self.sends.count(tx.id) == 1:
            error = {"error": {"code": "unknown_parent", "message": "trunk unknown"}}
            return web.json_response(error, status=422)
        if tx.id not in self.accepted:
            self.accepted[tx.id] = (tx.trunk, tx.branch)
            self.stream.put_nowait(tx.id)
        return web.json_response({"id": tx.id.hex()}, status=201)

    async def statuses(self, request: web.Request) -> web.Response:
        ids = (await request.json())["ids"]
        return web.json_response(
            {i: "confirmed" for i in ids if TxId(bytes.fromhex(i)) in self.accepted}
        )

    async def tips(self, request: web.Request) -> web.Response:
        approve = request.query["approve"]
        newest = next(reversed(self.accepted)).hex()
        return web.json_response({"trunk": approve, "branch": newest})

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.streams.append(request.query_string)
        while not ws.closed:
            if len(self.streams) == 1 and self.seq == 3:
                await ws.close()  # the stream goes away: the generator must come back
                break
            try:
                tx_id = await asyncio.wait_for(self.stream.get(), 0.2)
            except TimeoutError:
                continue
            self.seq += 1
            event = {"seq": self.seq, "topic": "confirmations", "data": {"id": tx_id.hex()}}
            await ws.send_bytes(orjson.dumps(event))
        return ws

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text='tangle_submit_stage_seconds_sum{stage="decode"} 1\n')


async def test_a_run_rebuilds_what_depends_on_a_refused_payment_and_retries_a_dropped_one(
    unused_tcp_port: int,
) -> None:
    plan = prebuild(40.0, 1.0, devices=4, nodes=1)
    raws = [decode(raw) for raw in plan.raws]
    refused = raws[0]
    # The plan approves the refused payment somewhere, or the test shows nothing.
    assert any(refused.id in (t.trunk, t.branch) for t in raws[1:])
    node = ScriptedNode(refused.id, drop_nth=len(plan.fundings) + 5)
    runner = web.AppRunner(node.app(), shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        api = f"http://127.0.0.1:{unused_tcp_port}"
        figures = await asyncio.wait_for(drive(plan, [api], grace=1.0), 30)
    finally:
        await runner.cleanup()
    known = {node.genesis, *(f.id for f in plan.fundings), *node.accepted}
    # Nothing the node accepted approves a payment it never heard of.
    assert all(p in known for parents in node.accepted.values() for p in parents)
    assert refused.id not in node.accepted
    assert node.dropped in node.accepted  # the same bytes again, after the drop
    assert figures["counts"]["offered"] == 40
    assert figures["counts"]["accepted"] == 40
    assert figures["counts"]["confirmed"] == 40
    assert figures["refused"] == {}
    assert figures["unknown_fate"] == 0
    assert figures["stranded"] == 0
    assert figures["rebuilt"]["payments"] >= 2  # the refused one, and what spent its change
    assert figures["rebuilt"]["before_sending"] == figures["rebuilt"]["payments"] - 1
    assert sum(figures["client_errors"].values()) >= 1
    assert figures["submit_stage_ms"] == [{}]  # a sum without a count is no mean
    assert node.streams == ["topics=confirmations", "topics=confirmations&since=3"]


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
