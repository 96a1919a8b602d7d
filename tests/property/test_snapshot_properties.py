"""Snapshots (PROTOCOL §8.5): pruning confirmed history changes no verdict and no balance.

A random history is built in two phases: a prefix with no double spends (the confirmed
part, as a node would see it), then a suffix with double spends, conflicting approvals
and spends of old outputs. The node keeps the consistent tips and a few random others;
:func:`plan` prunes what all of them saw; a tangle started from the snapshot, with the
retained transactions replayed, must give each the verdict the full history gave it,
and every kept tip the same unspent outputs. Fresh transactions on kept ones too.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tangle import (
    ConflictReason,
    NetworkParams,
    Outcome,
    OutputId,
    Tangle,
    Transaction,
    TxId,
    make_genesis,
)
from tangle.errors import EncodingError, InvalidGenesis
from tangle.pruning import plan, split
from tangle.snapshot import Snapshot, check_descends, decode_snapshot
from tests.helpers import NETWORK_ID, keypair, transfer

KEYS = [keypair(i) for i in range(21, 25)]
SPENT_BEFORE = {ConflictReason.DOUBLE_SPEND, ConflictReason.INPUT_NOT_IN_CONE}
PARAMS = NetworkParams(network_id=NETWORK_ID, base_difficulty=0)
GENESIS = make_genesis(NETWORK_ID, {k.address: 1_000 * (i + 1) for i, k in enumerate(KEYS)})


def random_payment(
    tangle: Tangle, rng: random.Random, *, double_spend: bool, stamp: int
) -> Transaction:
    ids = [tx.id for tx in tangle]
    live = [t for t in ids if tangle.is_consistent(t)]
    trunk, branch = rng.choice(live[-6:]), rng.choice(live)
    if not tangle.can_approve(trunk, branch):
        branch = trunk
    key = rng.choice(KEYS)
    seen = tangle.unspent_seen_by(trunk, branch)
    mine = sorted(o for o, out in seen.items() if out.address == key.address)
    if double_spend:  # anything this key ever owned, spent or not, in view or not
        everything = [
            OutputId(tx.id, i)
            for tx in tangle
            for i, out in enumerate(tx.outputs)
            if out.address == key.address
        ]
        mine = everything or mine
    if not mine:
        return transfer(key, PARAMS, (trunk, branch), timestamp=stamp)
    source = rng.choice(mine)
    output = tangle.ledger.output(source)
    assert output is not None
    payee = rng.choice(KEYS).address
    amount = rng.randint(1, output.amount)
    payments = {payee: amount}
    if amount < output.amount:
        payments[key.address] = payments.get(key.address, 0) + output.amount - amount
    return transfer(key, PARAMS, (trunk, branch), [source], payments, timestamp=stamp)


def all_confirmed(
    tangle: Tangle, pruned: list[Transaction], retained: list[Transaction]
) -> Snapshot:
    """The snapshot of ``tangle`` replacing ``pruned``, everything counted confirmed."""
    return split(
        tangle.snapshot, pruned, retained, confirmed=lambda t: True, below=tangle.dag.in_past_cone
    )


def build_history(seed: int, clean: int, messy: int) -> tuple[Tangle, list[Transaction]]:
    rng = random.Random(seed)
    full = Tangle(GENESIS, PARAMS)
    for n in range(clean + messy):
        tx = random_payment(full, rng, double_spend=n >= clean and rng.random() < 0.3, stamp=n)
        full.attach(tx)
    return full, full.history()


def reference_plan(
    tangle: Tangle, keep: list[TxId], confirmed: Callable[[TxId], bool]
) -> tuple[list[Transaction], list[Transaction]]:
    """:func:`plan` restated with sets of ids, one parent check at a time (the first
    implementation; the one in the module works on bit masks)."""
    dag = tangle.dag
    kept = list(dict.fromkeys(keep))
    if not kept:
        return [], tangle.history()
    roots = set(tangle.roots)
    cones = set(dag.past_cone_of_all(kept)) - roots

    def closed(candidates: set[TxId]) -> set[TxId]:
        found: set[TxId] = set()
        for tx_id in dag.past_cone_of_all(candidates):
            if (
                tx_id in candidates
                and confirmed(tx_id)
                and all(p in found or p in roots for p in dag.parents(tx_id))
            ):
                found.add(tx_id)
        return found

    pruned_ids = closed(set(dag.common_past_cone(kept)) - roots - set(kept))
    while True:
        retained_ids = cones - pruned_ids
        narrower = closed(pruned_ids & set(dag.common_past_cone(retained_ids)))
        if narrower == pruned_ids:
            break
        pruned_ids = narrower
    history = tangle.history()
    return (
        [tx for tx in history if tx.id in pruned_ids],
        [tx for tx in history if tx.id in retained_ids],
    )


@settings(max_examples=25)
@given(st.integers(0, 2**32), st.integers(1, 25), st.integers(0, 25), st.integers(0, 4))
def test_pruning_changes_no_verdict_and_no_balance(
    seed: int, clean: int, messy: int, extra_kept: int
) -> None:
    full, history = build_history(seed, clean, messy)
    rng = random.Random(seed)
    consistent = [tx.id for tx in history if full.is_consistent(tx.id)]
    keep = full.consistent_tips() + rng.sample(consistent, min(extra_kept, len(consistent)))
    clean_ids = {tx.id for tx in history[:clean]}  # "confirmed": the clean phase

    pruned_txs, retained = plan(full, keep, lambda t: t in clean_ids)
    assert (pruned_txs, retained) == reference_plan(full, keep, lambda t: t in clean_ids)
    for tx_id in keep:  # every kept transaction saw the whole pruned history
        assert {p.id for p in pruned_txs} <= set(full.dag.past_cone(tx_id))
    snapshot = split(
        full.snapshot,
        pruned_txs,
        retained,
        confirmed=lambda t: t in clean_ids,
        below=full.dag.in_past_cone,
    )
    assert snapshot.supply == full.supply  # §8.2: value is conserved by pruning
    check_descends(snapshot, GENESIS)
    assert decode_snapshot(snapshot.encode()) == snapshot
    assert decode_snapshot(snapshot.encode()).id == snapshot.id

    pruned = Tangle(snapshot, PARAMS)
    for tx in retained:
        assert pruned.attach(tx).outcome is Outcome.ATTACHED
    assert len(pruned.history()) == len(retained)
    for tx in retained:
        assert pruned.verdict(tx.id).reason == full.verdict(tx.id).reason, tx.id.hex()
    assert set(full.consistent_tips()) <= pruned.tips()
    for tip in full.consistent_tips():
        assert pruned.unspent_seen_by(tip) == full.unspent_seen_by(tip)

    for n in range(5):  # new arrivals on kept transactions, valid or not, judged alike
        tx = random_payment(full, rng, double_spend=rng.random() < 0.5, stamp=10_000 + n)
        if all(p in pruned and p not in pruned.roots for p in tx.parents):
            after, before = pruned.preview(tx).reason, full.preview(tx).reason
            assert (after is ConflictReason.NONE) == (before is ConflictReason.NONE)
            if before not in SPENT_BEFORE:  # a spend of pruned history: either name (§8.5)
                assert after == before


def test_a_spend_from_before_the_snapshot_is_a_double_spend() -> None:
    alice, bob = KEYS[0], KEYS[1]
    tangle = Tangle(GENESIS, PARAMS)
    g = GENESIS.id
    source = OutputId(g, 0 if GENESIS.outputs[0].address == alice.address else 1)
    spend = transfer(alice, PARAMS, (g, g), [source], {bob.address: 1_000})
    tangle.attach(spend)
    pruned_txs, retained = plan(tangle, [spend.id], lambda t: True)
    assert (pruned_txs, retained) == ([], [spend])  # what is kept is never pruned
    snapshot = all_confirmed(tangle, [spend], [])
    assert [e.tx.id for e in snapshot.entry_points] == [spend.id]  # the genesis is gone
    assert snapshot.pruned == 1
    pruned = Tangle(snapshot, PARAMS)
    again = transfer(alice, PARAMS, (spend.id, spend.id), [source], {bob.address: 1_000})
    verdict = pruned.preview(again)  # the genesis itself is gone: no approver kept it
    assert verdict.reason is ConflictReason.INPUT_NOT_IN_CONE
    assert "nor unspent in the snapshot" in verdict.detail
    coin = OutputId(spend.id, 0)
    fine = transfer(bob, PARAMS, (spend.id, spend.id), [coin], {alice.address: 1_000})
    assert pruned.preview(fine).consistent


def test_an_entry_points_spent_output_is_a_double_spend() -> None:
    alice, bob, carol = KEYS[0], KEYS[1], KEYS[2]
    tangle = Tangle(GENESIS, PARAMS)
    g = GENESIS.id
    source = OutputId(g, 0 if GENESIS.outputs[0].address == alice.address else 1)
    to_bob = transfer(alice, PARAMS, (g, g), [source], {bob.address: 1_000})
    tangle.attach(to_bob)
    bob_coin = OutputId(to_bob.id, 0)
    to_carol = transfer(bob, PARAMS, (to_bob.id, g), [bob_coin], {carol.address: 1_000})
    tangle.attach(to_carol)
    top = transfer(carol, PARAMS, (to_carol.id, to_bob.id), timestamp=3)
    tangle.attach(top)
    pruned_txs, retained = plan(tangle, [top.id], lambda t: True)
    assert (pruned_txs, retained) == ([to_bob, to_carol], [top])
    snapshot = all_confirmed(tangle, pruned_txs, retained)
    assert {e.tx.id for e in snapshot.entry_points} == {to_bob.id, to_carol.id}
    assert dict(snapshot.outputs) == {OutputId(to_carol.id, 0): to_carol.outputs[0]} | {
        oid: out for oid, out in Snapshot.of_genesis(GENESIS).outputs if oid != source
    }
    pruned = Tangle(snapshot, PARAMS)
    pruned.attach(top)
    again = transfer(bob, PARAMS, (top.id, top.id), [bob_coin], {alice.address: 1_000})
    verdict = pruned.preview(again)
    assert verdict.reason is ConflictReason.DOUBLE_SPEND
    assert "spent before the snapshot" in verdict.detail
    assert pruned.preview(again).reason is tangle.preview(again).reason  # as with history


def test_an_unconfirmed_entry_point_poisons_its_approvers() -> None:
    alice = KEYS[0]
    tangle = Tangle(GENESIS, PARAMS)
    g = GENESIS.id
    first = transfer(alice, PARAMS, (g, g), timestamp=1)
    tangle.attach(first)
    later = transfer(alice, PARAMS, (first.id, first.id), timestamp=2)
    tangle.attach(later)
    snapshot = split(
        tangle.snapshot,
        [first],
        [later],
        confirmed=lambda t: t != first.id,
        below=tangle.dag.in_past_cone,
    )
    pruned = Tangle(snapshot, PARAMS)
    assert pruned.verdict(first.id).reason is ConflictReason.PRUNED
    pruned.attach(later)
    assert pruned.verdict(later.id).reason is ConflictReason.PARENT_CONFLICTING


def test_snapshot_decoding_is_strict() -> None:
    data = Snapshot.of_genesis(GENESIS).encode()
    with pytest.raises(EncodingError, match="snapshot version"):
        decode_snapshot(b"\x02" + data[1:])
    with pytest.raises(EncodingError, match="trailing bytes"):
        decode_snapshot(data + b"\x00")
    with pytest.raises(EncodingError, match="truncated"):
        decode_snapshot(data[:-3])
    other = make_genesis(NETWORK_ID + 1, {KEYS[0].address: 5})
    with pytest.raises(InvalidGenesis, match="snapshot: expected network"):
        check_descends(Snapshot.of_genesis(other), GENESIS)
    with pytest.raises(InvalidGenesis, match="snapshot network id"):
        Tangle(Snapshot.of_genesis(other), PARAMS)


def test_a_new_transaction_must_see_every_frontier_entry_point() -> None:
    """§8.5: above a snapshot, approving one side of the boundary only is refused (it could
    otherwise spend what the other side already spent, unseen)."""
    alice, bob = KEYS[0], KEYS[1]
    tangle = Tangle(GENESIS, PARAMS)
    g = GENESIS.id
    source = OutputId(g, 0 if GENESIS.outputs[0].address == alice.address else 1)
    spend = transfer(alice, PARAMS, (g, g), [source], {bob.address: 1_000})
    empty = transfer(bob, PARAMS, (g, g), timestamp=2)
    top = transfer(bob, PARAMS, (spend.id, empty.id), timestamp=3)
    for tx in (spend, empty, top):
        tangle.attach(tx)
    pruned_txs, retained = plan(tangle, [top.id], lambda t: True)
    assert {tx.id for tx in pruned_txs} == {spend.id, empty.id}
    snapshot = all_confirmed(tangle, pruned_txs, retained)
    assert {(e.tx.id, e.frontier) for e in snapshot.entry_points} == {
        (spend.id, True),
        (empty.id, True),
    }
    pruned = Tangle(snapshot, PARAMS)
    pruned.attach(top)
    again = transfer(alice, PARAMS, (empty.id, empty.id), [source], {bob.address: 1_000})
    verdict = pruned.preview(again)  # sees one entry point, not the one that spent the coin
    assert verdict.reason is ConflictReason.PRUNED
    assert "misses an entry point" in verdict.detail
    fine = transfer(bob, PARAMS, (top.id, top.id), [OutputId(spend.id, 0)], {alice.address: 9})
    assert pruned.preview(fine).reason is ConflictReason.AMOUNT_MISMATCH  # judged normally
