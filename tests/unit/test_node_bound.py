"""What a node holds, bounded on arrival (issue 12): ``--max-transactions`` is enforced as
transactions arrive (prune at once, a hard ceiling above it), and buffered transactions
whose missing parents nobody can serve are dropped (``Node.abandon``; PROTOCOL §7.2, §8.5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tangle import Outcome, TxId
from tangle.node.config import NodeConfig
from tangle.node.node import Node, Rejected
from tests.helpers import Clock, keypair, transfer

CAROL = keypair(73)
BOUND = 100


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    config = NodeConfig(
        dev=True,
        data_dir=tmp_path,
        base_difficulty=0,
        prune_age=3600,  # by age, nothing would go
        max_transactions=BOUND,
        prune_interval=10_000,  # nor by the timer: only the bound can prune here
        confirm_interval=10_000,
        liveness_interval=10_000,
        node_seed=b"\x02" * 32,
    )
    node = Node(config, clock=Clock())
    await node.start()
    yield node
    await node.stop()


async def let_it_run() -> None:
    for _ in range(20):
        await asyncio.sleep(0.001)


async def test_the_bound_holds_on_arrival(node: Node) -> None:
    held = []
    for _ in range(3 * BOUND):
        node.clock.t += 0.2  # type: ignore[attr-defined]
        await node.issuer.issue(node.key, [], {}, b"")
        node.confirm()
        await let_it_run()
        held.append(len(node.tangle))
    assert node.tangle.snapshot.pruned > 0, "never pruned"
    # Pruned as the count passed the bound, not at the next timer: it never got far past.
    assert max(held) <= BOUND + BOUND // 10, str(held)


async def test_a_ceiling_refuses_what_pruning_cannot_make_room_for(node: Node) -> None:
    ceiling = node.pruner.ceiling
    assert BOUND < ceiling <= 2 * BOUND
    parent = node.genesis.id
    n = 0
    while len(node.tangle) < ceiling:  # nothing is confirmed: nothing can be pruned
        n += 1
        tx = transfer(CAROL, node.params, (parent, parent), payload=b"%d" % n, timestamp=n)
        assert node.accept(tx).outcome is Outcome.ATTACHED
        parent = tx.id
        await let_it_run()
    refused = transfer(CAROL, node.params, (parent, parent), payload=b"over", timestamp=0)
    result = node.accept(refused)  # by gossip: not taken, not buffered, asked again later
    assert result.outcome is Outcome.REFUSED
    assert not node.knows(refused.id)
    with pytest.raises(Rejected) as error:
        await node.submit(refused.encode())
    assert (error.value.status, error.value.code) == (503, "overloaded")
    assert len(node.tangle) == ceiling


async def test_abandon_drops_what_waits_on_parents_nobody_serves(node: Node) -> None:
    g = node.genesis.id
    lost = transfer(CAROL, node.params, (g, g), payload=b"never served")
    child = transfer(CAROL, node.params, (lost.id, lost.id), payload=b"child")
    grandchild = transfer(CAROL, node.params, (child.id, g), payload=b"grandchild")
    assert node.accept(child).outcome is Outcome.BUFFERED
    assert node.accept(grandchild).outcome is Outcome.BUFFERED
    assert node.missing_parents() == {lost.id}
    assert node.abandon([TxId(lost.id)]) == 2
    assert not node.knows(child.id)
    assert not node.knows(grandchild.id)
    assert node.missing_parents() == frozenset()
    assert node.counts()["unsolid"] == 0
