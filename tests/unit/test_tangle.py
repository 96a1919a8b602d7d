"""Attaching: stateless checks, solidification buffer, duplicates (PROTOCOL §5, §7.2)."""

from __future__ import annotations

import pytest

from tangle import (
    InvalidSignature,
    Keypair,
    NetworkParams,
    Outcome,
    Tangle,
    Transaction,
    UnknownTransaction,
    WrongNetwork,
)
from tangle.tangle import AttachResult
from tests.helpers import output_of, transfer


def chain(key: Keypair, params: NetworkParams, genesis: Transaction, n: int) -> list[Transaction]:
    """n data transactions, each approving the previous one."""
    txs: list[Transaction] = []
    parent = genesis.id
    for i in range(n):
        tx = transfer(key, params, (parent, parent), payload=f"reading {i}".encode())
        txs.append(tx)
        parent = tx.id
    return txs


def test_attach_and_duplicate(
    tangle: Tangle, genesis: Transaction, carol: Keypair, params: NetworkParams
) -> None:
    (tx,) = chain(carol, params, genesis, 1)
    assert tangle.attach(tx) == AttachResult(Outcome.ATTACHED, (tx.id,))
    assert tangle.attach(tx).outcome is Outcome.DUPLICATE
    assert len(tangle) == 2
    assert tangle.get(tx.id) == tx
    assert list(tangle) == [genesis, tx]


def test_children_wait_for_parents(
    tangle: Tangle, genesis: Transaction, carol: Keypair, params: NetworkParams
) -> None:
    a, b, c = chain(carol, params, genesis, 3)
    result = tangle.attach(c)
    assert result.outcome is Outcome.BUFFERED
    assert result.missing == (b.id,)
    assert tangle.is_buffered(c.id)
    assert c.id not in tangle
    result = tangle.attach(b)
    assert result.outcome is Outcome.BUFFERED
    assert result.missing == (a.id,)
    assert tangle.missing_parents() == {a.id}
    assert tangle.attach(c).outcome is Outcome.DUPLICATE  # buffered counts as known
    result = tangle.attach(a)
    assert result == AttachResult(Outcome.ATTACHED, (a.id, b.id, c.id))  # parents first
    assert tangle.unsolid_count == 0
    assert tangle.missing_parents() == frozenset()
    assert tangle.tips() == {c.id}


def test_waits_for_both_parents(
    tangle: Tangle, genesis: Transaction, alice: Keypair, bob: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    x = transfer(alice, params, (g, g), payload=b"x")
    y = transfer(bob, params, (g, g), payload=b"y")
    z = transfer(alice, params, (x.id, y.id), payload=b"z")
    assert set(tangle.attach(z).missing) == {x.id, y.id}
    assert tangle.attach(x).attached == (x.id,)  # z still lacks y
    assert tangle.attach(y).attached == (y.id, z.id)


def test_buffer_is_bounded(genesis: Transaction, carol: Keypair, params: NetworkParams) -> None:
    tangle = Tangle(genesis, params, max_unsolid=2)
    txs = chain(carol, params, genesis, 4)
    tangle.attach(txs[1])
    tangle.attach(txs[2])
    result = tangle.attach(txs[3])
    assert result.evicted == (txs[1].id,)  # the oldest waiting one goes
    assert tangle.unsolid_count == 2
    assert tangle.missing_parents() == {txs[1].id}
    tangle.attach(txs[0])
    assert len(tangle) == 2  # txs[2] still waits for the evicted txs[1]
    assert tangle.attach(txs[1]).attached == (txs[1].id, txs[2].id, txs[3].id)


def test_zero_sized_buffer_keeps_nothing(
    genesis: Transaction, carol: Keypair, params: NetworkParams
) -> None:
    tangle = Tangle(genesis, params, max_unsolid=0)
    _a, b = chain(carol, params, genesis, 2)
    result = tangle.attach(b)
    assert result.evicted == (b.id,)
    assert tangle.unsolid_count == 0
    with pytest.raises(ValueError, match="max_unsolid"):
        Tangle(genesis, params, max_unsolid=-1)


def test_invalid_transaction_changes_nothing(
    tangle: Tangle, genesis: Transaction, alice: Keypair, bob: Keypair, params: NetworkParams
) -> None:
    g = genesis.id
    good = transfer(alice, params, (g, g), [output_of(genesis, alice.address)], {bob.address: 1000})
    other = NetworkParams(network_id=params.network_id + 1, base_difficulty=params.base_difficulty)
    foreign = transfer(alice, other, (g, g), payload=b"elsewhere")
    with pytest.raises(WrongNetwork):
        tangle.attach(foreign)
    import dataclasses

    forged = dataclasses.replace(good, signature=bob.sign(good.essence_hash()))
    from tangle import solve

    forged = solve(forged, params)
    with pytest.raises(InvalidSignature):
        tangle.attach(forged)
    assert len(tangle) == 1
    assert tangle.tips() == {g}
    assert tangle.unsolid_count == 0
    assert tangle.attach(good).outcome is Outcome.ATTACHED


def test_unknown_lookups(tangle: Tangle) -> None:
    missing = b"\x07" * 32
    for lookup in (tangle.get, tangle.verdict, tangle.is_consistent):
        with pytest.raises(UnknownTransaction):
            lookup(missing)  # type: ignore[arg-type]


def test_abandon_drops_what_waits_on_a_missing_parent_transitively(
    tangle: Tangle, genesis: Transaction, alice: Keypair, carol: Keypair, params: NetworkParams
) -> None:  # §7.2: a parent nobody can serve; issue 12, finding 8
    g = genesis.id
    lost, a, b = chain(carol, params, genesis, 3)  # `lost` never arrives
    other = transfer(alice, params, (g, g), payload=b"other")  # never arrives either
    both = transfer(alice, params, (b.id, other.id), payload=b"waits on b and other")
    elsewhere = transfer(alice, params, (other.id, other.id), payload=b"waits on other")
    for tx in (a, b, both, elsewhere):
        assert tangle.attach(tx).outcome is Outcome.BUFFERED
    assert tangle.missing_parents() == {lost.id, other.id}
    assert tangle.abandon([a.id, g]) == ()  # buffered or attached: not missing, nothing goes
    dropped = tangle.abandon([lost.id])
    assert set(dropped) == {a.id, b.id, both.id}
    assert dropped.index(a.id) < dropped.index(b.id) < dropped.index(both.id)
    assert tangle.buffered() == [elsewhere]
    assert tangle.missing_parents() == {other.id}
    assert not tangle.is_buffered(both.id)
    assert tangle.abandon([lost.id]) == ()  # nothing waits on it any more
    # Arriving later is harmless: nothing is released, and what was dropped can come again.
    assert tangle.attach(lost).attached == (lost.id,)
    assert tangle.attach(a).attached == (a.id,)
    assert tangle.attach(other).attached == (other.id, elsewhere.id)
    assert tangle.unsolid_count == 0
