"""Gossip between real node processes: convergence, catch-up, garbage (loopback only)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable

import aiohttp

from tangle import encode_address, solve
from tangle.node import link, wire
from tangle.node.genesis import DEV_NETWORK_ID
from tangle.node.wire import Kind
from tangle.schema import Status
from tests.functional.framework import DEV_PARAMS, NodeProcess, submit, wait_until
from tests.helpers import keypair

CAROL, DAVE = keypair(21), keypair(22)


def state(node: NodeProcess) -> tuple[int, tuple[str, str]]:
    info = node.get("/api/v1/info").json
    carol = node.get(f"/api/v1/addresses/{encode_address(CAROL.address)}").json["balance"]
    return info["transactions"], (carol["confirmed"], carol["pending"])


def test_three_nodes_converge(spawn: Callable[..., NodeProcess]) -> None:
    n0 = spawn("n0")
    n1 = spawn("n1", "--peer", n0.api, "--faucet-index", "1")
    n2 = spawn("n2", "--peer", n0.api, "--peer", n1.api, "--faucet-index", "2")
    nodes = [n0, n1, n2]
    wait_until(lambda: all(len(node_peers(n)) == 2 for n in nodes), 20, "a full mesh")
    ids = [n.fund(CAROL, 10 + i) for i, n in enumerate(nodes) for _ in range(3)]
    pay = n1.data(DAVE, b"meter=9;wh=100")
    assert submit(n1, pay).status == 201
    expected = str(sum(10 + i for i in range(3) for _ in range(3)))

    def converged() -> bool:
        states = [state(n) for n in nodes]
        return all(s == states[0] for s in states) and states[0][1] == (expected, expected)

    wait_until(converged, 30, "the same transactions and balances on every node")
    try:
        wait_until(
            lambda: all(n.status(t) == Status.CONFIRMED for n in nodes for t in [*ids, pay.id]),
            60,
            "every node to confirm every payment",
        )
    except AssertionError:
        for i, node in enumerate(nodes):  # what is stuck where, for the failure report
            for t in [*ids, pay.id]:
                if node.status(t) != Status.CONFIRMED:
                    meta = node.get(f"/api/v1/transactions/{t.hex()}").json["metadata"]
                    print(f"n{i} {t.hex()[:12]} {meta}")
            print(f"n{i} info {node.get('/api/v1/info').json}")
        raise


def node_peers(node: NodeProcess) -> list[str]:
    """The API URLs of the node's connected peers."""
    return [peer["api"] for peer in node.get("/api/v1/peers").json["peers"]]


def test_a_node_cut_off_catches_up(spawn: Callable[..., NodeProcess]) -> None:
    n0 = spawn("n0")
    n1 = spawn("n1", "--peer", n0.api, "--faucet-index", "1")
    wait_until(lambda: node_peers(n1), 20, "n1 to connect")
    first = n0.fund(CAROL, 5)
    wait_until(lambda: n1.status(first) is not None, 20, "n1 to hear of the first payment")
    assert n1.stop() == 0
    later = [n0.fund(CAROL, 7) for _ in range(6)]
    later.append(n0.fund(DAVE, 3))
    wait_until(lambda: all(n0.status(t) == Status.CONFIRMED for t in later), 20, "n0 confirmations")
    n1.start()  # new port, same data; it dials n0 again
    wait_until(lambda: all(n1.status(t) is not None for t in later), 30, "n1 to catch up")
    wait_until(lambda: state(n1) == state(n0), 30, "the same state")


async def _gossip_client(node: NodeProcess, frames: list[bytes], *, proven: bool = False) -> str:
    """Send ``frames`` on /gossip (after the HELLO/AUTH exchange if ``proven``); returns
    how the node ended the connection."""
    async with aiohttp.ClientSession() as session:
        if proven:
            ws = await link.connect(session, node.api, keypair(77), DEV_NETWORK_ID)
        else:
            ws = await session.ws_connect(node.url("/gossip"))
        for frame in frames:
            await ws.send_bytes(frame)
        try:
            while True:
                msg = await asyncio.wait_for(ws.receive(), timeout=10)
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    return "closed"
        except TimeoutError:
            return "still open"


def test_garbage_from_a_peer_drops_it(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn("n0")
    rng = random.Random(3)
    junk = bytes(rng.getrandbits(8) for _ in range(300))
    assert asyncio.run(_gossip_client(node, [junk])) == "closed"
    hello = wire.hello(DEV_NETWORK_ID, b"\x07" * 32, b"\x00" * 32, "http://127.0.0.1:1")
    assert asyncio.run(_gossip_client(node, [hello, b"\x02\x09"])) == "closed"
    assert asyncio.run(_gossip_client(node, [b"\x02\x09"], proven=True)) == "closed"
    wrong_network = wire.hello(DEV_NETWORK_ID + 1, b"\x08" * 32, b"\x00" * 32, "")
    assert asyncio.run(_gossip_client(node, [wrong_network])) == "closed"
    good = node.data(CAROL, b"fine")
    forged = solve(dataclasses.replace(good, signature=DAVE.sign(good.essence_hash())), DEV_PARAMS)
    frames = [wire.encode(Kind.TX, forged.encode())]
    assert asyncio.run(_gossip_client(node, frames, proven=True)) == "closed"
    log = node.tail(50)
    assert "dropping peer" in log
    assert "does not verify" in log
    assert "network: expected" in log
    assert node.get("/api/v1/info").status == 200  # still serving
    assert node.get(f"/api/v1/transactions/{forged.id.hex()}").status == 404  # never stored
