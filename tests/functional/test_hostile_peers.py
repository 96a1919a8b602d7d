"""Hostile gossip peers against a real node process, while an honest peer gossips
(issue 12). Each attacker is scripted in tests/functional/hostile.py; each test is
bounded in time and ends with the node stopping on SIGTERM within 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import replace

import aiohttp

from benchmarks.hostile import RawWebSocket
from tangle import Keypair, Transaction, build
from tangle.node import link, wire
from tangle.node.genesis import DEV_NETWORK_ID
from tangle.node.wire import Kind
from tests.functional.framework import DEV_PARAMS, NodeProcess, submit, wait_until
from tests.helpers import keypair

STOP_WITHIN = 5.0


def data_payment(node: NodeProcess, n: int, size: int = 64, params=DEV_PARAMS) -> Transaction:  # type: ignore[no-untyped-def]
    trunk, branch = node.tips()
    return build(
        keypair(100 + n),
        params,
        trunk=trunk,
        branch=branch,
        timestamp=int(time.time() * 1000),
        payload=os.urandom(size),
    )


async def honest_gossip(node: NodeProcess, txs: list[Transaction]) -> None:
    """An honest peer: HELLO, then the transactions, reading whatever comes back."""
    async with aiohttp.ClientSession() as session:
        ws = await link.connect(session, node.url(""), Keypair(os.urandom(32)), DEV_NETWORK_ID)
        for tx in txs:
            await ws.send_bytes(wire.encode(Kind.TX, tx.encode()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(node.status(t.id) for t in txs):
            with contextlib.suppress(TimeoutError):
                await ws.receive(timeout=0.2)
        await ws.close()


def stops_promptly(node: NodeProcess) -> None:
    began = time.monotonic()
    node.stop(timeout=STOP_WITHIN + 5)
    assert time.monotonic() - began < STOP_WITHIN, "SIGTERM took too long"


async def test_a_slow_reader_dropped_for_a_bad_transaction_does_not_stop_ingest(spawn) -> None:  # type: ignore[no-untyped-def]
    """Finding 1: a peer that stops reading, with the node's answers to it piling up, then
    sends a transaction of another network. Dropping it must not wait on its full
    buffer: an honest peer's transactions still attach, and SIGTERM still stops."""
    node = spawn()
    big = [data_payment(node, i, size=4096) for i in range(4)]
    for tx in big:
        assert submit(node, tx).status in (200, 201)
    attacker = await RawWebSocket.connect(node.url("/gossip"))
    await attacker.handshake(DEV_NETWORK_ID)
    ids = [tx.id for tx in big] * (wire.MAX_IDS // len(big))
    for _ in range(8):  # ~8 MB of answers: far more than the socket buffers hold
        await attacker.send(wire.encode(Kind.REQUEST, b"".join(ids)))
    await asyncio.sleep(1.0)  # the node has filled its send buffer to the attacker
    other_network = replace(DEV_PARAMS, network_id=DEV_NETWORK_ID ^ 1)
    await attacker.send(wire.encode(Kind.TX, data_payment(node, 9, params=other_network).encode()))
    await asyncio.sleep(0.5)
    honest = [data_payment(node, 20 + i) for i in range(5)]
    await asyncio.wait_for(honest_gossip(node, honest), 15)
    wait_until(lambda: all(node.status(t.id) for t in honest), 5, "honest transactions")
    stops_promptly(node)
    attacker.abort()


async def test_sigterm_with_connections_that_never_say_hello(spawn) -> None:  # type: ignore[no-untyped-def]
    """Review of issue 12: 3 websockets that never sent HELLO held SIGTERM for 24 s, and
    idle TCP connections were kept for aiohttp's hour."""
    node = spawn()
    silent = [await RawWebSocket.connect(node.url("/gossip")) for _ in range(3)]
    port = int(node.api.rsplit(":", 1)[1])
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    idle[0][1].write(b"GET /api/v1/info HTTP/1.1\r\nHost: x\r\n")  # half a request
    await asyncio.sleep(0.5)
    began = time.monotonic()
    stops_promptly(node)
    assert time.monotonic() - began < STOP_WITHIN
    for ws in silent:
        ws.abort()
    for _, writer in idle:
        writer.close()


async def test_idle_connections_are_closed(spawn) -> None:  # type: ignore[no-untyped-def]
    node = spawn()
    port = int(node.api.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 15) == b""  # closed by the node
    writer.close()
