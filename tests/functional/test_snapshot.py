"""Pruning into a snapshot (PROTOCOL §8.5) with real node processes: history leaves disk
and memory, balances and confirmations stay, a restart keeps them, and a new node
starts from a peer's snapshot and catches up by gossip."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest

from tangle import TxId, encode_address
from tangle.schema import Status
from tangle.snapshot import decode_snapshot
from tests.functional.framework import NodeProcess, submit, wait_until
from tests.helpers import keypair

ALICE, BOB = keypair(41), keypair(42)
PRUNING = ("--prune-age", "1", "--prune-interval", "0.5")


def balance(node: NodeProcess, who: str) -> tuple[int, int]:
    body = node.get(f"/api/v1/addresses/{who}").json["balance"]
    return int(body["confirmed"]), int(body["pending"])


def rows(node: NodeProcess) -> int:
    with sqlite3.connect(node.data_dir / "tangle.sqlite3") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM transactions").fetchone()
    return int(count)


def pay_around(node: NodeProcess, rounds: int) -> list[TxId]:
    """Alice and Bob pay each other back and forth, each payment on the previous one."""
    sent = []
    payer, payee = ALICE, BOB
    for n in range(rounds):
        tx = node.transfer(payer, payee, 50 - n)
        result = submit(node, tx)
        assert result.status == 201, result.raw
        sent.append(tx.id)
        wait_until(lambda tx=tx: node.status(tx.id) == Status.CONFIRMED, 20, "a payment to confirm")
        payer, payee = payee, payer
    return sent


def test_pruning_keeps_balances_and_survives_restart(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn("pruner", *PRUNING)
    funding = node.fund(ALICE, 1_000)
    wait_until(lambda: node.status(funding) == Status.CONFIRMED, 20, "the funding to confirm")
    sent = pay_around(node, 6)
    alice, bob = encode_address(ALICE.address), encode_address(BOB.address)
    expected = {alice: balance(node, alice), bob: balance(node, bob)}
    assert expected[alice][0] + expected[bob][0] == 1_000

    def pruned() -> bool:
        return node.get("/api/v1/info").json["snapshot"]["pruned"] >= 5

    wait_until(pruned, 30, "the node to prune its confirmed history")
    info = node.get("/api/v1/info").json
    held, pruned_count = info["transactions"], info["snapshot"]["pruned"]
    # Genesis, funding, payments and the node's consolidations: some of them are gone.
    assert held + pruned_count >= 1 + 1 + len(sent)
    assert rows(node) <= held  # and gone from the disk too
    assert {who: balance(node, who) for who in expected} == expected
    assert node.get(f"/api/v1/transactions/{funding.hex()}").status == 404  # gone from here
    served = node.get("/api/v1/snapshot")
    assert served.status == 200
    snapshot = decode_snapshot(served.raw)
    assert snapshot.id.hex() == info["snapshot"]["id"]
    assert snapshot.supply == 10**15

    more = pay_around(node, 2)  # payments on top of the snapshot work as before
    node.stop()
    node.start()
    expected = {alice: balance(node, alice), bob: balance(node, bob)}
    assert expected[alice][0] + expected[bob][0] == 1_000
    for tx_id in more:
        status = node.status(tx_id)
        assert status in ("confirmed", None), status  # confirmed, or pruned since
    assert node.get("/api/v1/info").json["snapshot"]["pruned"] >= 5


def test_a_new_node_starts_from_a_peers_snapshot(spawn: Callable[..., NodeProcess]) -> None:
    source = spawn("source", *PRUNING)
    funding = source.fund(ALICE, 500)
    wait_until(lambda: source.status(funding) == Status.CONFIRMED, 20, "the funding to confirm")
    pay_around(source, 4)
    wait_until(lambda: source.get("/api/v1/info").json["snapshot"]["pruned"] >= 3, 30, "a snapshot")
    newcomer = spawn("newcomer", "--snapshot-from", source.api, "--peer", source.api)
    started = newcomer.get("/api/v1/info").json["snapshot"]
    assert started["pruned"] >= 3  # it never saw the pruned history
    latest = pay_around(source, 2)[-1]
    wait_until(lambda: newcomer.status(latest) == Status.CONFIRMED, 30, "the newcomer to catch up")
    alice, bob = encode_address(ALICE.address), encode_address(BOB.address)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(balance(newcomer, w)[0] == balance(source, w)[0] for w in (alice, bob)):
            break
        time.sleep(0.2)
    assert [balance(newcomer, w)[0] for w in (alice, bob)] == [
        balance(source, w)[0] for w in (alice, bob)
    ]
    assert sum(balance(newcomer, w)[0] for w in (alice, bob)) == 500


def test_a_snapshot_of_another_network_is_refused(spawn: Callable[..., NodeProcess]) -> None:
    other = spawn("other", "--network-id", "0x1234")
    with pytest.raises(AssertionError, match=r"unusable.*expected network"):
        spawn("refuser", "--snapshot-from", other.api)  # the node exits with the reason
