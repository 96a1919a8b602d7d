"""A peer that floods a node with transactions cannot starve an honest peer (real node).

Two gossip connections to one node: the attacker sends a few thousand valid
transactions as fast as it can, then an honest peer sends a handful. With one FIFO
ingest queue the honest ones would be verified after the whole flood; with the fair
queue (deficit round robin per peer) they are taken in turn with the flood's. The
node's event log numbers attached transactions in order, which is what is measured.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import aiohttp

from tangle import Keypair, Transaction, build
from tangle.node import link, wire
from tangle.node.genesis import DEV_NETWORK_ID
from tangle.node.wire import Kind
from tests.functional.framework import DEV_PARAMS, NodeProcess, wait_until
from tests.helpers import keypair

FLOOD = 3000
HONEST = 20


def _payments(
    node: NodeProcess, first_key: int, count: int, label: bytes, *, chain: bool
) -> list[Transaction]:
    """Valid data payments on the node's tips; with ``chain``, each approves the one
    before (a thin tangle: thousands of tips on two parents would make every walk slow,
    which is not what this test measures)."""
    trunk, branch = node.tips()
    txs: list[Transaction] = []
    for i in range(count):
        tx = build(
            keypair(first_key + i % 50),
            DEV_PARAMS,
            trunk=txs[-1].id if chain and txs else trunk,
            branch=branch,
            timestamp=int(time.time() * 1000),
            payload=label + str(i).encode(),
        )
        txs.append(tx)
    return txs


async def _send(
    node: NodeProcess, node_id: bytes, txs: list[Transaction], sent: asyncio.Event
) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await link.connect(session, node.url(""), Keypair(node_id), DEV_NETWORK_ID)
        for tx in txs:
            await ws.send_bytes(wire.encode(Kind.TX, tx.encode()))
        sent.set()
        await asyncio.sleep(3)  # stay connected while the node works through them
        await ws.close()


async def _flood_then_honest(
    node: NodeProcess, flood: list[Transaction], honest: list[Transaction]
) -> None:
    flooded, done = asyncio.Event(), asyncio.Event()
    attacker = asyncio.create_task(_send(node, b"\xaa" * 32, flood, flooded))
    await flooded.wait()  # the whole flood is sent: most of it waits in the node's queue
    await _send(node, b"\xbb" * 32, honest, done)
    await attacker


async def _attach_order(node: NodeProcess) -> dict[str, int]:
    """Transaction id -> its sequence number in the node's event log."""
    order: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(node.url("/api/v1/events?topics=transactions&since=0"))
        try:
            while True:
                msg = await asyncio.wait_for(ws.receive(), timeout=2)
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    break
                event = msg.json()
                if event.get("topic") == "transactions":
                    order[event["data"]["id"]] = event["seq"]
        except TimeoutError:
            pass  # the backlog is replayed: nothing more is coming
        finally:
            await ws.close()
    return order


def test_a_flooding_peer_cannot_starve_an_honest_one(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn("node0")
    flood = _payments(node, 3000, FLOOD, b"flood ", chain=True)
    honest = _payments(node, 4000, HONEST, b"honest ", chain=False)
    asyncio.run(_flood_then_honest(node, flood, honest))
    wanted = {tx.id.hex() for tx in flood + honest}
    wait_until(lambda: wanted <= set(asyncio.run(_attach_order(node))), 30, "every payment")
    order = asyncio.run(_attach_order(node))
    flood_seqs = sorted(order[tx.id.hex()] for tx in flood)
    honest_seqs = [order[tx.id.hex()] for tx in honest]
    # The honest payments arrived after the flood, yet were attached in turn with it:
    # every one before the flood's last tenth (a FIFO would put all after the flood).
    assert max(honest_seqs) < flood_seqs[int(0.9 * FLOOD)], (
        f"honest attached at {sorted(honest_seqs)}; the flood from {flood_seqs[0]} "
        f"to {flood_seqs[-1]}, median {statistics.median(flood_seqs)}"
    )
