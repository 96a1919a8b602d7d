"""GET /api/v1/events: numbered events by topic; a reconnect with since gets what it missed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp

from tangle import encode_address
from tangle.schema import Status
from tests.functional.framework import NodeProcess, http, wait_until
from tests.helpers import keypair

EVE = keypair(41)


async def collect(url: str, until: Callable[[list[dict]], bool], limit: float = 20) -> list[dict]:  # type: ignore[type-arg]
    events: list[dict] = []  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def read() -> None:
            async for msg in ws:
                events.append(json.loads(msg.data))
                if until(events):
                    return

        await asyncio.wait_for(read(), limit)
    return events


def test_events_stream_and_resume(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    address = encode_address(EVE.address)
    base = node.api.replace("http://", "ws://") + "/api/v1/events"
    topics = f"topics=confirmations,address:{address}"

    async def first_round() -> list[dict]:  # type: ignore[type-arg]
        task = asyncio.ensure_future(
            collect(
                f"{base}?{topics}&since=0",
                lambda ev: any(e.get("data", {}).get("event") == "confirmed" for e in ev),
            )
        )
        await asyncio.sleep(0.3)
        await asyncio.to_thread(node.fund, EVE, 42)
        return await task

    events = asyncio.run(first_round())
    received = [e for e in events if e["topic"] == f"address:{address}"]
    assert received[0]["data"]["event"] == "received"
    assert received[0]["data"]["amount"] == "42"
    assert any(e["topic"] == "confirmations" for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    last = seqs[-1]

    # While nobody listens, another payment; a reconnect with since=last gets it.
    second = node.fund(EVE, 43)
    wait_until(lambda: node.status(second) == Status.CONFIRMED, 20, "the second payment")
    missed = asyncio.run(
        collect(
            f"{base}?{topics}&since={last}",
            lambda ev: any(
                e["data"].get("amount") == "43" and e["data"].get("event") == "confirmed"
                for e in ev
            ),
        )
    )
    assert all(e["seq"] > last for e in missed)
    assert {e["data"]["event"] for e in missed if e["topic"].startswith("address:")} == {
        "received",
        "confirmed",
    }


def test_bad_topics_are_refused(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    result = http("GET", node.url("/api/v1/events?topics=weather"))
    assert result.status == 400
    assert result.json["error"]["code"] == "invalid_topic"
    result = http("GET", node.url("/api/v1/events?topics=address:tgl1oops"))
    assert result.status == 400
    assert result.json["error"]["code"] == "invalid_address"
    result = http("GET", node.url("/api/v1/events?since=yesterday"))
    assert result.status == 400


def test_a_resume_across_a_restart_gets_a_gap_notice(spawn: Callable[..., NodeProcess]) -> None:
    """Finding 11: the sequence starts again at 1 when the node restarts. A client resuming
    with the plain since=N it saw is told (the log ends before N), and one resuming with
    since=EPOCH:N is told that the node restarted; both then get the new boot's events
    instead of silently missing the next N of them."""
    node = spawn()
    address = encode_address(EVE.address)
    topics = f"topics=confirmations,address:{address}"

    def base() -> str:
        return node.api.replace("http://", "ws://") + "/api/v1/events"

    for amount in (7, 8, 9):
        tx = node.fund(EVE, amount)
        wait_until(lambda tx=tx: node.status(tx) == Status.CONFIRMED, 20, "a payment")
    before = asyncio.run(
        collect(
            f"{base()}?{topics}&since=0",
            lambda ev: sum(e["data"].get("amount") == "9" for e in ev) >= 2,
        )
    )
    last, epoch = before[-1]["seq"], before[-1].get("epoch")
    assert last >= 6

    node.stop()
    node.start()

    def confirmed_payment(ev: list[dict]) -> bool:  # type: ignore[type-arg]
        return any(e.get("data", {}).get("amount") == "44" for e in ev)

    async def resume(since: str) -> list[dict]:  # type: ignore[type-arg]
        task = asyncio.ensure_future(
            collect(f"{base()}?{topics}&since={since}", confirmed_payment, limit=15)
        )
        await asyncio.sleep(0.3)
        if not done:
            done.append(await asyncio.to_thread(node.fund, EVE, 44))
        return await task

    done: list[object] = []
    plain = asyncio.run(resume(str(last)))  # an old client: since=N alone
    assert plain[0].get("type") == "gap", f"no gap notice: first came {plain[0]}"
    assert plain[0]["reason"] == "ahead"
    assert f"expected since at most 0, got {last}" in plain[0]["message"]
    assert any(e.get("seq", 0) >= 1 for e in plain[1:])

    assert epoch is not None, "events name no epoch"
    tagged = asyncio.run(resume(f"{epoch}:{last}"))
    notice = tagged[0]
    assert notice["type"] == "gap"
    assert notice["reason"] == "restarted"
    assert notice["epoch"] != epoch
    assert f"expected epoch {notice['epoch']}, got {epoch}" in notice["message"]
    first = min(e["seq"] for e in plain if "seq" in e)
    assert tagged[1]["seq"] == first  # this boot's events, from its first on these topics
    assert all(e["epoch"] == notice["epoch"] for e in tagged[1:])
