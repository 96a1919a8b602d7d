"""Contested-output spam (issue 12, finding 3): an inconsistent transaction spends nothing
(PROTOCOL §8.3, §8.4), and R6 costs what the cones involved hold, not what the ledger holds."""

from __future__ import annotations

import pytest

from tangle import ConflictReason, Keypair, NetworkParams, OutputId, Tangle, Transaction, TxId
from tangle.constants import MAX_INPUTS
from tangle.dag import Dag
from tests.helpers import output_of, transfer


def random_ids(seed: int, count: int) -> list[OutputId]:
    return sorted(
        OutputId(TxId(bytes([seed, i % 256, i // 256]) * 10 + b"sp"), 0) for i in range(count)
    )


def test_inconsistent_spends_contest_nothing(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> None:  # §8.3: judged inconsistent on arrival, it is in no consistent past cone
    g = genesis.id
    victim = output_of(genesis, alice.address)
    spam = random_ids(1, MAX_INPUTS - 1)
    for n in range(4):  # each spends the victim's output and the same 126 made-up ids
        tx = transfer(carol, params, (g, g), [victim, *spam], {carol.address: 1}, timestamp=n)
        tangle.attach(tx)
        assert not tangle.is_consistent(tx.id)
    assert dict(tangle.ledger.conflict_sets()) == {}
    assert tangle.ledger.spenders(victim) == ()
    # The owner's own spend is untouched: consistent, and its output contested by nobody.
    pay = transfer(alice, params, (g, g), [victim], {bob.address: 1_000}, timestamp=9)
    tangle.attach(pay)
    assert tangle.is_consistent(pay.id)
    assert tangle.ledger.spenders(victim) == (pay.id,)
    assert tangle.can_approve(pay.id, tangle.consistent_tips()[0])


def contested_tangle(
    genesis: Transaction, alice: Keypair, carol: Keypair, params: NetworkParams, pairs: int
) -> tuple[Tangle, TxId, TxId]:
    """``pairs`` outputs each spent by two consistent rivals (real double spends), away
    from two data transactions whose cones are checked by R6."""
    tangle = Tangle(genesis, params)
    g = genesis.id
    source = output_of(genesis, alice.address)
    split = transfer(alice, params, (g, g), [source], {alice.address: 1_000}, timestamp=1)
    tangle.attach(split)
    coin = output_of(split, alice.address)
    for n in range(pairs):
        # One coin per pair: a chain of spends on one side, a rival of each on the other.
        keep = transfer(
            alice, params, (split.id, split.id), [coin], {alice.address: 1_000}, timestamp=10 + n
        )
        rival = transfer(
            alice,
            params,
            (split.id, split.id),
            [coin],
            {carol.address: 1_000},
            timestamp=10_000 + n,
        )
        tangle.attach(keep)
        tangle.attach(rival)
        assert tangle.is_consistent(keep.id)
        assert tangle.is_consistent(rival.id)
        split, coin = keep, output_of(keep, alice.address)
    assert len(dict(tangle.ledger.conflict_sets())) == pairs
    a = transfer(carol, params, (g, g), payload=b"a", timestamp=1)
    b = transfer(carol, params, (g, g), payload=b"b", timestamp=2)
    tangle.attach(a)
    tangle.attach(b)
    return tangle, a.id, b.id


def test_cone_clash_does_not_scan_conflicts_outside_the_cones(
    genesis: Transaction,
    alice: Keypair,
    carol: Keypair,
    params: NetworkParams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # §8.3 R6: only outputs spent inside the parents' cones can clash
    calls: list[int] = []
    in_past_cone = Dag.in_past_cone

    def counting(self: Dag, ancestor: TxId, tx_id: TxId) -> bool:
        calls.append(1)
        return in_past_cone(self, ancestor, tx_id)

    work = []
    for pairs in (2, 40):
        tangle, a, b = contested_tangle(genesis, alice, carol, params, pairs)
        monkeypatch.setattr(Dag, "in_past_cone", counting)
        calls.clear()
        assert tangle.ledger.cone_clash(tangle.dag, (a, b)) is None
        assert tangle.can_approve(a, b)
        work.append(len(calls))
        monkeypatch.setattr(Dag, "in_past_cone", in_past_cone)
    assert work[0] == work[1], f"cone checks grow with the ledger's conflicts: {work}"


def test_cone_clash_still_finds_the_smallest_clash(
    genesis: Transaction, alice: Keypair, carol: Keypair, params: NetworkParams
) -> None:  # §8.3 R6, with the order-independent detail
    tangle, _, _ = contested_tangle(genesis, alice, carol, params, 5)
    sets = dict(tangle.ledger.conflict_sets())
    first, second = next(iter(sets.values()))
    key = transfer(carol, params, (first, second), timestamp=77)
    tangle.attach(key)
    verdict = tangle.verdict(key.id)
    assert verdict.reason is ConflictReason.CONE_CONFLICT
    output_id = next(o for o, s in sets.items() if set(s) == {first, second})
    low, high = sorted((first, second))
    assert verdict.detail == (
        f"output {output_id.hex()} is spent by both {low.hex()} and {high.hex()} in the past cone"
    )
