"""The wallet's payer against a real node: chained pending spends, tips that approve,
insufficient funds that issue nothing, promotion."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable

import pytest

from tangle.schema import Status
from tests.functional.framework import NodeProcess, wait_until
from wallet.client import NodeClient
from wallet.errors import InsufficientFunds, NodeError, NodeUnreachable
from wallet.keys import derive_keypair
from wallet.payments import Payer

pytestmark = pytest.mark.functional
SEED = bytes(range(32))


async def test_back_to_back_payments_spend_pending_change(
    spawn: Callable[..., NodeProcess],
) -> None:
    node = spawn()
    alice, bob = derive_keypair(SEED, 0), derive_keypair(SEED, 1)
    async with NodeClient(node.api) as client:
        await client.faucet(alice.address, 1_000)
        payer = Payer(client, alice)
        sent = [await payer.pay({bob.address: 100}) for _ in range(5)]  # no waiting between
        assert len({tx.id for tx in sent}) == 5
        # each spends the change of the one before (accepted: so it approves it, §8.3 R2)
        for before, after in itertools.pairwise(sent):
            assert {oid.tx_id for oid in after.inputs} == {before.id}
        assert await payer.available() == 500
        bob_info = await client.address(bob.address)
        assert bob_info.pending == 500
        statuses = await client.statuses([tx.id for tx in sent])
        assert all(s in ("pending", "confirmed") for s in statuses.values())


async def test_insufficient_funds_issue_nothing(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    alice, bob = derive_keypair(SEED, 0), derive_keypair(SEED, 1)
    async with NodeClient(node.api) as client:
        await client.faucet(alice.address, 300)
        before = (await client.info())["transactions"]
        with pytest.raises(InsufficientFunds, match="has 300 available, the payment needs 301"):
            await Payer(client, alice).pay({bob.address: 301})
        assert (await client.info())["transactions"] == before


async def test_tips_approve_and_errors(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    alice = derive_keypair(SEED, 0)
    async with NodeClient(node.api) as client:
        funding = await client.faucet(alice.address, 50)
        with pytest.raises(NodeError) as unknown:
            await client.tips([type(funding)(bytes(32))])
        assert unknown.value.status == 404
        assert "is unknown" in unknown.value.message
        weight = (await client.transaction(funding))["metadata"]["cumulative_weight"]
        await Payer(client, alice).promote(funding)
        after = (await client.transaction(funding))["metadata"]["cumulative_weight"]
        assert after == weight + 1  # the promotion approves it
        wait_until(lambda: node.status(funding) == Status.CONFIRMED, 20, "the funding to confirm")


async def test_concurrent_payments_of_one_payer_never_share_a_coin(
    spawn: Callable[..., NodeProcess],
) -> None:
    """Two payments at once from one payer: distinct coins with coins to spare; with one
    coin, one payment is paid and the other fails clearly, never two "successes"."""
    node = spawn()
    alice, bob, carol = (derive_keypair(SEED, i) for i in range(3))
    async with NodeClient(node.api) as client:
        for _ in range(3):
            await client.faucet(alice.address, 500)
        payer = Payer(client, alice)
        try:
            first, second = await asyncio.gather(
                payer.pay({bob.address: 100}), payer.pay({bob.address: 200})
            )
            assert set(first.inputs).isdisjoint(second.inputs)
            statuses = await client.statuses([first.id, second.id])
            assert set(statuses.values()) <= {"pending", "confirmed"}
            assert (await client.address(bob.address)).pending == 300

            await client.faucet(carol.address, 1000)
            lone = Payer(client, carol)
            results = await asyncio.gather(
                lone.pay({bob.address: 600}), lone.pay({bob.address: 600}), return_exceptions=True
            )
            lone.solver.close()
            paid = [r for r in results if not isinstance(r, BaseException)]
            (failed,) = [r for r in results if isinstance(r, BaseException)]
            assert len(paid) == 1
            assert isinstance(failed, InsufficientFunds), failed
            assert (await client.address(bob.address)).pending == 900
        finally:
            payer.solver.close()


async def test_unreachable_node_says_so() -> None:
    async with NodeClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(
            NodeUnreachable, match=re.escape("cannot reach the node at http://127.0.0.1:9")
        ):
            await client.info()
