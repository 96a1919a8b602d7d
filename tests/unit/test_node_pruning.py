"""Pruning on an in-process node with a hand-driven clock (PROTOCOL §8.5): conflicting
transactions stay conflicting, a lost double spend does not stop pruning, the faucet
works on, and pruned history that gossip brings back is ignored."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tangle import Address, Transaction, TxStatus
from tangle.node.config import NodeConfig
from tangle.node.node import Node, Rejected
from tests.helpers import Clock, keypair, output_of, transfer

ALICE, BOB, CAROL = keypair(71), keypair(72), keypair(73)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    config = NodeConfig(
        dev=True,
        data_dir=tmp_path,
        base_difficulty=0,
        prune_age=10,
        prune_interval=10_000,  # pruned by hand here
        confirm_interval=10_000,
        liveness_interval=10_000,
        node_seed=b"\x01" * 32,
    )
    node = Node(config, clock=Clock())
    await node.start()
    yield node
    await node.stop()


def tick(node: Node, seconds: float) -> None:
    node.clock.t += seconds  # type: ignore[attr-defined]


async def settle(node: Node, rounds: int = 3) -> None:
    """Empty transactions on the walk's tips, confirmation passes after each."""
    for _ in range(rounds):
        tick(node, 0.2)
        await node.issuer.issue(node.key, [], {}, b"")
        node.confirm()


def assert_counts(node: Node) -> None:
    """The engine's running counts equal a count of every held transaction's status."""
    found = Counter(node.engine.status(tx.id).name.lower() for tx in node.tangle)
    assert node.engine.counts() == {
        name: found.get(name, 0) for name in ("confirmed", "conflicting", "orphaned", "pending")
    }


def faucet_payment(node: Node, to: Address, amount: int) -> Transaction:
    g = node.genesis.id
    source = next(
        o for o, out in node.tangle.snapshot.outputs if out.address == node.faucet.address
    )
    held = node.tangle.ledger.output(source)
    assert held is not None
    return transfer(
        node.faucet,
        node.params,
        (g, g),
        [source],
        {to: amount, node.faucet.address: held.amount - amount},
        timestamp=1,
    )


async def test_a_conflicting_transaction_stays_conflicting(node: Node) -> None:
    paid = faucet_payment(node, CAROL.address, 10)
    tick(node, 1)
    node.accept(paid)
    await settle(node, 6)
    assert node.engine.status(paid.id) is TxStatus.CONFIRMED
    tick(node, 1_000)
    g = node.genesis.id
    # Spends Carol's coin without approving the payment that made it (R2), then a tip
    # approving both it and the payment's side.
    bad = transfer(CAROL, node.params, (g, g), [output_of(paid, CAROL.address)], {BOB.address: 10})
    node.accept(bad)
    top = transfer(node.key, node.params, (bad.id, node.tangle.consistent_tips()[0]), timestamp=4)
    node.accept(top)
    assert node.engine.status(bad.id) is TxStatus.CONFLICTING
    await settle(node, 2)
    assert_counts(node)
    assert await node.prune(node.clock()) > 0
    assert_counts(node)
    assert node.engine.status(bad.id) is TxStatus.CONFLICTING  # not made valid by pruning
    assert node.engine.status(top.id) is TxStatus.CONFLICTING
    assert top.id not in node.tangle.consistent_tips()


async def test_a_lost_double_spend_does_not_stop_pruning(node: Node) -> None:
    funding = await node.issuer.pay_from_faucet(ALICE.address, 100)
    await settle(node, 5)
    source = output_of(node.tangle.get(funding), ALICE.address)
    tips = node.engine.select_tips(node.rng, node.clock())
    winner = transfer(ALICE, node.params, tips, [source], {BOB.address: 100}, timestamp=5)
    loser = transfer(ALICE, node.params, tips, [source], {CAROL.address: 100}, timestamp=6)
    node.accept(winner)
    await settle(node, 5)
    assert node.engine.status(winner.id) is TxStatus.CONFIRMED
    node.accept(loser)  # by gossip: validity alone
    assert node.engine.status(loser.id) is TxStatus.CONFLICTING
    assert_counts(node)
    held = []
    for _ in range(3):
        for _ in range(20):
            tick(node, 1)
            await node.issuer.issue(node.key, [], {}, b"")
            node.confirm()
        tick(node, 100)
        await settle(node, 2)
        assert await node.prune(node.clock()) > 0
        assert_counts(node)
        held.append(len(node.tangle))
    assert max(held) < 15  # bounded, round after round
    assert node.balances(BOB.address)[0] == 100
    assert node.balances(CAROL.address) == (0, 0)


async def test_the_faucet_and_pruned_history_after_pruning(node: Node) -> None:
    first = await node.issuer.pay_from_faucet(ALICE.address, 5)
    await settle(node, 5)
    tick(node, 100)
    await settle(node, 3)
    assert await node.prune(node.clock()) > 0
    assert first not in node.tangle
    again = await node.issuer.pay_from_faucet(ALICE.address, 7)  # its last payment is gone
    await settle(node, 5)
    assert node.engine.status(again) is TxStatus.CONFIRMED
    assert node.balances(ALICE.address)[0] == 12
    assert node.is_pruned(first)
    assert node.is_pruned(node.genesis.id)


async def test_a_second_spend_of_a_pending_output_is_refused(node: Node) -> None:
    funding = await node.issuer.pay_from_faucet(ALICE.address, 50)
    source = output_of(node.tangle.get(funding), ALICE.address)
    tips = node.engine.select_tips(node.rng, node.clock())
    first = transfer(ALICE, node.params, tips, [source], {BOB.address: 50}, timestamp=7)
    second = transfer(ALICE, node.params, tips, [source], {CAROL.address: 50}, timestamp=8)
    await node.submit(first.encode())
    with pytest.raises(Rejected) as refused:
        await node.submit(second.encode())
    assert (refused.value.status, refused.value.code) == (409, "double_spend")
    assert f"already spent by pending transaction {first.id.hex()}" in refused.value.message
    assert refused.value.extra["spent_by"] == first.id.hex()
    assert second.id not in node.tangle
