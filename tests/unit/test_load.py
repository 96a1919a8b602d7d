"""Load shedding (tangle.node.load) and the client that honours Retry-After."""

from __future__ import annotations

import random

import pytest
from aiohttp import web

from tangle.node.load import MAX_RETRY_AFTER, Load, LoadLimits, RefusalRate, shed
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
        (Load(0, 3.0, 0.0), "commit_lag", "commit lag: expected under 2 s, got 3.00 s"),
        (
            Load(0, 0.0, 0.75),
            "backlog",
            "gossip backlog: expected under 50% of the queue, got 75%",
        ),
    ],
)
def test_past_a_bound_the_refusal_names_the_signal(load: Load, signal: str, expected: str) -> None:
    refused = shed(load, LIMITS)
    assert refused is not None
    assert refused.signal == signal
    assert expected in refused.message
    assert refused.retry_after >= 1


def test_the_worst_signal_decides_and_retry_after_grows_with_demand() -> None:
    at_bound = shed(Load(100, 0.0, 0.0), LIMITS)
    lagging = shed(Load(100, 5.0, 0.0), LIMITS)  # 2.5x its bound beats 1x
    herd = shed(Load(100, 0.0, 0.0, refused_per_s=450), LIMITS)  # 4.5x what it takes at once
    stampede = shed(Load(100, 0.0, 0.0, refused_per_s=1e9), LIMITS)
    assert at_bound is not None
    assert lagging is not None
    assert herd is not None
    assert stampede is not None
    assert lagging.signal == "commit_lag"
    assert (at_bound.retry_after, lagging.retry_after) == (1, 3)
    assert (herd.retry_after, stampede.retry_after) == (6, MAX_RETRY_AFTER)


def test_a_signal_that_is_not_a_number_counts_as_far_past_its_bound() -> None:
    refused = shed(Load(0, float("nan"), 0.0), LIMITS)
    assert refused is not None
    assert refused.signal == "commit_lag"
    assert shed(Load(0, float("inf"), 0.0), LIMITS) is not None
    aged = shed(Load(0, 0.0, 0.1, ingest_age=2.5), LIMITS)
    assert aged is not None
    assert "expected a wait under 2 s, the oldest waited 2.50 s" in aged.message


def test_refusal_rate_counts_the_last_whole_second() -> None:
    rate = RefusalRate()
    for t in (10.1, 10.5, 10.9):
        rate.add(t)
    assert rate.rate(10.95) == 3
    assert rate.rate(11.2) == 3  # the second just past still counts
    rate.add(11.3)
    assert rate.rate(11.4) == 3
    assert rate.rate(12.5) == 1
    assert rate.rate(14.0) == 0  # a quiet second forgets


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        LoadLimits(max_in_flight=0)
    with pytest.raises(ValueError, match="max_backlog"):
        LoadLimits(max_backlog=0)
    with pytest.raises(ValueError, match="max_commit_lag"):
        LoadLimits(max_commit_lag=float("nan"))


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
    runner, url, seen = await _serve([_overloaded(10) for _ in range(3)])

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
    assert caught.value.extra["retry_after_s"] == 10
    assert len(seen) == 1  # 10 s x [0.5, 1.5) never fits 4 s of patience: no second try


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


def _failed_commit() -> web.Response:
    return web.json_response(
        {"error": {"code": "storage_unavailable", "message": "disk", "retry_after_s": 1}},
        status=503,
        headers={"Retry-After": "1"},
    )


@pytest.mark.parametrize(("path", "tries"), [("/api/v1/transactions", 2), ("/api/v1/faucet", 1)])
async def test_a_failed_commit_is_asked_again_only_when_that_repeats_nothing(
    path: str, tries: int
) -> None:
    """The same transaction's bytes twice are one transaction; a second faucet request is
    a second payment, and the first may be committed after all."""
    runner, url, seen = await _serve([_failed_commit(), web.json_response({}, status=201)])

    async def sleep(seconds: float) -> None:
        return None

    try:
        async with NodeClient(url, sleep=sleep) as client:
            if tries == 1:
                with pytest.raises(NodeError, match="disk"):
                    await client.request("POST", path, json={})
            else:
                assert (await client.request("POST", path, json={}))[0] == 201
    finally:
        await runner.cleanup()
    assert len(seen) == tries
