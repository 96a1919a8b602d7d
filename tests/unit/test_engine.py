"""The engine: statuses, confirmation, conflicts, orphans, advice, liveness (PROTOCOL §9)."""

from __future__ import annotations

import random

import pytest

from tangle import ConflictReason, Keypair, NetworkParams, Tangle, Transaction, TxId, TxStatus
from tangle.engine import Engine, EngineParams, LivenessPolicy
from tangle.walk import WalkParams
from tests.helpers import output_of, transfer


def engine_for(tangle: Tangle, **kw: object) -> Engine:
    params = EngineParams(capacity=256, walk=WalkParams(depth=0.5), promote_after=1.0, **kw)  # type: ignore[arg-type]
    return Engine(tangle, params)


def traffic(
    engine: Engine,
    key: Keypair,
    params: NetworkParams,
    rng: random.Random,
    now: float,
    count: int,
    step: float = 0.05,
    confirm_every: int = 10,
) -> float:
    """Honest data transactions on tips the engine selects; returns the new time."""
    for i in range(count):
        now += step
        trunk, branch = engine.select_tips(rng, now)
        engine.attach_validated(
            transfer(
                key, params, (trunk, branch), payload=f"r{now}".encode(), timestamp=int(now * 1000)
            ),
            now,
        )
        if i % confirm_every == confirm_every - 1:
            engine.confirm(rng, now)
    return now


def test_genesis_is_confirmed(tangle: Tangle, genesis: Transaction) -> None:
    engine = engine_for(tangle)
    assert engine.status(genesis.id) is TxStatus.CONFIRMED
    assert engine.metadata(genesis.id, 0.0).confidence == 1.0


def test_exactly_one_of_a_conflicting_pair_is_confirmed(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:  # §9
    engine = engine_for(tangle)
    rng = random.Random(4)
    source = output_of(genesis, alice.address)
    pair = engine.select_tips(rng, 0.0)
    to_bob = transfer(alice, params, pair, [source], {bob.address: 1000})
    to_carol = transfer(alice, params, pair, [source], {carol.address: 1000}, timestamp=2)
    engine.attach_validated(to_bob, 0.0)
    engine.attach_validated(to_carol, 0.0)
    traffic(engine, carol, params, rng, 0.0, 200)
    statuses = {engine.status(to_bob.id), engine.status(to_carol.id)}
    assert statuses == {TxStatus.CONFIRMED, TxStatus.CONFLICTING}
    loser = to_bob if engine.status(to_bob.id) is TxStatus.CONFLICTING else to_carol
    meta = engine.metadata(loser.id, 10.0)
    assert meta.conflict_reason is ConflictReason.LOST_CONFLICT
    assert not meta.should_reattach  # its input is spent by the winner: nothing to reissue
    # Nothing confirmed approves the loser.
    for tx in tangle:
        if engine.status(tx.id) is TxStatus.CONFIRMED:
            assert not tangle.dag.in_past_cone(loser.id, tx.id)


def test_approvers_of_a_loser_are_conflicting_and_may_reattach(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:
    engine = engine_for(tangle)
    rng = random.Random(2)
    source = output_of(genesis, alice.address)
    g = genesis.id
    to_bob = transfer(alice, params, (g, g), [source], {bob.address: 1000})
    engine.attach_validated(to_bob, 0.0)
    traffic(engine, carol, params, rng, 0.0, 60, confirm_every=5)
    assert engine.status(to_bob.id) is TxStatus.CONFIRMED
    late = transfer(alice, params, (g, g), [source], {carol.address: 1000}, timestamp=9)
    engine.attach_validated(late, 3.5)  # a double spend after the fact
    engine.confirm(rng, 3.5)
    assert engine.conflict_reason(late.id) is ConflictReason.LOST_CONFLICT
    child = transfer(bob, params, (late.id, late.id), payload=b"approves the loser")
    engine.attach_validated(child, 3.6)
    meta = engine.metadata(child.id, 3.6)
    assert meta.status is TxStatus.CONFLICTING
    assert meta.conflict_reason is ConflictReason.PARENT_CONFLICTING
    assert meta.should_reattach


def test_leaving_the_window_unconfirmed_is_orphaned(
    tangle: Tangle, genesis: Transaction, carol: Keypair, params: NetworkParams
) -> None:  # §9
    engine = engine_for(tangle)
    rng = random.Random(3)
    g = genesis.id
    lonely = transfer(carol, params, (g, g), payload=b"never confirmed")
    engine.attach_validated(lonely, 0.0)
    engine.window.walkable[engine.window.slot(lonely.id)] = False  # walks never reach it
    traffic(engine, carol, params, rng, 0.0, 300, confirm_every=1000)
    meta = engine.metadata(lonely.id, 20.0)
    assert meta.status is TxStatus.ORPHANED
    assert meta.should_reattach
    assert meta.cumulative_weight is None  # left the window


def test_promote_advice_for_a_lagging_transaction(
    tangle: Tangle, genesis: Transaction, carol: Keypair, params: NetworkParams
) -> None:
    engine = engine_for(tangle)
    g = genesis.id
    tx = transfer(carol, params, (g, g), payload=b"slow")
    engine.attach_validated(tx, 0.0)
    assert not engine.metadata(tx.id, 0.5).should_promote  # too young to worry
    assert engine.metadata(tx.id, 2.0).should_promote  # pending, unconfirmed, 2 s old


def test_a_lone_payment_confirms_within_seconds_through_consolidation(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:  # liveness (docs/TIP_SELECTION.md, section 6): the node fills in
    engine = engine_for(tangle, liveness=LivenessPolicy(idle_after=0.2))
    rng = random.Random(9)
    pay = transfer(
        alice,
        params,
        engine.select_tips(rng, 0.0),
        [output_of(genesis, alice.address)],
        {bob.address: 1000},
    )
    engine.attach_validated(pay, 0.0)
    now = 0.0
    while engine.status(pay.id) is not TxStatus.CONFIRMED and now < 10.0:
        now += 0.1  # the node's timer
        if engine.consolidation_due(now):
            engine.attach_validated(
                transfer(carol, params, engine.select_tips(rng, now), timestamp=int(now * 1000)),
                now,
            )
        engine.confirm(rng, now)
    assert engine.status(pay.id) is TxStatus.CONFIRMED
    assert now <= 3.0, f"confirmed only after {now:.1f} s"


def test_liveness_policy() -> None:
    policy = LivenessPolicy(idle_after=1.0, max_tips=3)
    assert not policy.due(now=10.5, last_arrival=10.0, tips=2)
    assert policy.due(now=11.0, last_arrival=10.0, tips=2)
    assert policy.due(now=10.1, last_arrival=10.0, tips=4)
    # A payment nobody approves is approved by the node after tip_wait (quiet latency).
    assert not policy.due(now=10.5, last_arrival=10.0, tips=2, waiting=0.05)
    assert policy.due(now=10.5, last_arrival=10.0, tips=2, waiting=policy.tip_wait)
    # The idle and too-many-tips rules wait min_gap after the last consolidation; tip_wait
    # does not (it is what keeps a lone payment fast).
    just = 11.0 - policy.min_gap / 2
    assert not policy.due(now=11.0, last_arrival=10.0, tips=4, last_issued=just)
    assert policy.due(now=11.0, last_arrival=10.0, tips=4, last_issued=11.0 - policy.min_gap)
    assert policy.due(now=11.0, last_arrival=10.0, tips=2, waiting=1.0, last_issued=11.0)
    counted: list[int] = []

    def tips() -> int:  # counting tips is the costly part: only when the cheap rules say no
        counted.append(1)
        return 4

    assert policy.due(now=11.0, last_arrival=10.0, tips=tips)
    assert not counted
    assert policy.due(now=10.5, last_arrival=10.0, tips=tips)
    assert counted == [1]


def test_params_checks(tangle: Tangle) -> None:
    with pytest.raises(ValueError, match="threshold"):
        EngineParams(threshold=0.5)
    with pytest.raises(ValueError, match="tip selection"):
        Engine(tangle).select_tips(random.Random(1), 0.0, mode="best")


def test_a_pending_transaction_pushed_out_of_the_window_confirms_with_its_approvers(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:  # §9; issue 12, finding 9: a flood must not orphan an honest payment for good
    engine = Engine(tangle, EngineParams(capacity=128, walk=WalkParams(depth=0.5)))
    rng = random.Random(5)
    g = genesis.id
    now = 0.0
    honest = transfer(carol, params, (g, g), payload=b"an honest payment")
    engine.attach_validated(honest, now)

    def flood(parent: TxId, count: int, tag: str) -> TxId:
        nonlocal now
        for i in range(count):  # cheap transactions, none of which approves `honest`
            now += 0.001
            tx = transfer(bob, params, (parent, parent), payload=f"{tag} {i}".encode())
            engine.attach_validated(tx, now)
            parent = tx.id
        return parent

    side = flood(g, 62, "flood")
    now += 0.001
    approver = transfer(alice, params, (honest.id, side), payload=b"approves it")
    engine.attach_validated(approver, now)
    flood(approver.id, 70, "more")  # pushes `honest` (not its approver) out of the window
    assert honest.id not in engine.window
    assert approver.id in engine.window
    assert engine.status(honest.id) is TxStatus.ORPHANED
    traffic(engine, carol, params, rng, now, 40, step=0.01, confirm_every=5)
    assert engine.status(approver.id) is TxStatus.CONFIRMED
    # Every tip that approves its approver approves it: its confidence is at least as high.
    assert engine.status(honest.id) is TxStatus.CONFIRMED
    assert engine.counts()["orphaned"] == sum(
        1 for tx in tangle if engine.status(tx.id) is TxStatus.ORPHANED
    )
