"""Load shedding (tangle.node.load) and the client that honours Retry-After."""

from __future__ import annotations

import random

import pytest
from aiohttp import web

from tangle.node.load import MAX_RETRY_AFTER, Load, LoadLimits, shed
from wallet.client import NodeClient
from wallet.errors import NodeError

LIMITS = LoadLimits(max_in_flight=100, max_commit_lag=2.0, max_backlog=0.5, retry_after=1.0)


def test_a_node_within_its_bounds_takes_submissions() -> None:
    assert shed(Load(in_flight=99, commit_lag=1.9, backlog=0.49), LIMITS) is None
    assert shed(Load(in_flight=0, commit_lag=0.0, backlog=0.0), LIMITS) is None


@pytest.mark.parametrize(
    ("load", "signal", "expected"),
    [
        (
            Load(100, 0.0, 0.0),
            "in_flight",
            "submissions in flight: expected fewer than 100, got 100",
        ),
        (Load(0, 3.0, 0.0), "commit_lag", "commit lag: expected at most 2 s, got 3.00 s"),
        (
            Load(0, 0.0, 0.75),
            "backlog",
            "gossip backlog: expected at most 50% of the queue, got 75%",
        ),
    ],
)
def test_past_a_bound_the_refusal_names_the_signal(load: Load, signal: str, expected: str) -> None:
    refused = shed(load, LIMITS)
    assert refused is not None
    assert refused.signal == signal
    assert expected in refused.message
    assert refused.retry_after >= 1


def test_the_worst_signal_decides_and_retry_after_grows_with_it() -> None:
    mild = shed(Load(100, 0.0, 0.0), LIMITS)
    worse = shed(Load(350, 2.5, 0.0), LIMITS)
    awful = shed(Load(10**6, 0.0, 0.0), LIMITS)
    assert mild is not None
    assert worse is not None
    assert awful is not None
    assert worse.signal == "in_flight"  # 3.5x its bound beats 1.25x
    assert (mild.retry_after, worse.retry_after, awful.retry_after) == (1, 4, MAX_RETRY_AFTER)


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        LoadLimits(max_in_flight=0)
    with pytest.raises(ValueError, match="max_backlog"):
        LoadLimits(max_backlog=0)


async def _serve(answers: list[web.Response]) -> tuple[web.AppRunner, str, list[str]]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return answers.pop(0)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", seen


def _overloaded(seconds: int) -> web.Response:
    return web.json_response(
        {"error": {"code": "overloaded", "message": "behind", "retry_after_s": seconds}},
        status=503,
        headers={"Retry-After": str(seconds)},
    )


async def test_the_client_honours_retry_after_with_jitter_then_succeeds() -> None:
    runner, url, seen = await _serve(
        [_overloaded(2), _overloaded(1), web.json_response({"id": "ab" * 32}, status=201)]
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    try:
        async with NodeClient(url, rng=random.Random(1), sleep=sleep) as client:
            status, body = await client.request("POST", "/api/v1/faucet", json={})
            assert (status, body) == (201, {"id": "ab" * 32})
            assert client.retried == 2
    finally:
        await runner.cleanup()
    assert len(seen) == 3
    assert 1.0 <= waits[0] < 3.0  # Retry-After x [0.5, 1.5)
    assert 0.5 <= waits[1] < 1.5
    assert waits[0] / 2 != waits[1] / 1  # jittered, not a fixed schedule


async def test_the_client_gives_up_after_its_patience_and_says_why() -> None:
    runner, url, seen = await _serve([_overloaded(5) for _ in range(3)])

    async def sleep(seconds: float) -> None:
        return None

    try:
        async with NodeClient(url, patience=4.0, sleep=sleep) as client:
            with pytest.raises(NodeError) as caught:
                await client.request("POST", "/api/v1/transactions", json={})
    finally:
        await runner.cleanup()
    assert caught.value.status == 503
    assert caught.value.code == "overloaded"
    assert caught.value.extra["retry_after_s"] == 5
    assert len(seen) == 1  # a 5 s wait does not fit 4 s of patience: no second try


async def test_other_errors_are_not_retried() -> None:
    answer = web.json_response({"error": {"code": "invalid_json", "message": "x"}}, status=400)
    runner, url, seen = await _serve([answer])
    try:
        async with NodeClient(url) as client:
            with pytest.raises(NodeError, match="x"):
                await client.request("POST", "/api/v1/transactions", json={})
    finally:
        await runner.cleanup()
    assert len(seen) == 1
