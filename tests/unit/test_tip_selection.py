"""The simple tip selection: consistent pairs, the model tip, seeded reproducibility."""

from __future__ import annotations

import random

from tangle import Keypair, NetworkParams, Tangle, Transaction
from tangle.tip_selection import model_tip, select_uniform
from tests.helpers import transfer


def test_only_tip_is_paired_with_itself(tangle: Tangle, genesis: Transaction) -> None:
    assert select_uniform(tangle, random.Random(1)) == (genesis.id, genesis.id)


def test_never_pairs_conflicting_spends(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
    rivals: tuple[Transaction, Transaction],
) -> None:
    a, b = rivals
    extra = transfer(bob, params, (a.id, a.id), payload=b"builds on a")
    tangle.attach(extra)
    # a's side has more history (extra), so the model tip is extra and b is left behind.
    assert model_tip(tangle) == extra.id
    rng = random.Random(5)
    for _ in range(50):
        trunk, branch = select_uniform(tangle, rng)
        assert tangle.can_approve(trunk, branch)
        assert b.id not in (trunk, branch)


def test_seed_reproduces_choices(
    tangle: Tangle, genesis: Transaction, alice: Keypair, bob: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    for i in range(6):
        tangle.attach(transfer(alice if i % 2 else bob, params, (g, g), payload=bytes([i])))
    first = [select_uniform(tangle, random.Random(42)) for _ in range(5)]
    again = [select_uniform(tangle, random.Random(42)) for _ in range(5)]
    assert first == again
    assert len({select_uniform(tangle, random.Random(s)) for s in range(30)}) > 3
