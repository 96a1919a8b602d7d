"""A rule-based state machine for the ledger (PROTOCOL §8).

Random valid, invalid and conflicting transfers and random approvals are attached to a
tangle. After every step:

- the verdict of every new transaction equals an independent oracle that restates §8.3
  globally (every transaction of the past cone valid against its own cone, and no output
  spent twice in the cone), computed by its own walk over parents;
- every consistent tip sees exactly the supply, with no output spent twice (§8.2);
- replaying everything in a shuffled order gives the same verdicts and tips (§8.3: the
  verdict depends on the past cone alone);
- R6's fast path (``Ledger.cone_clash``, which looks only at conflicts spent where the two
  cones differ) names the same clash as a plain scan of every spend in the union of the
  two cones, for every pair of consistent tips and for random consistent pairs;
- conflict sets hold consistent spenders only: an inconsistent transaction spends nothing
  (it lies in no consistent past cone, §8.3 R1).
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tangle import (
    ConflictReason,
    NetworkParams,
    OutputId,
    Tangle,
    Transaction,
    TxId,
    make_genesis,
)
from tangle.hashing import address_of
from tests.helpers import NETWORK_ID, keypair, transfer

KEYS = [keypair(i) for i in range(1, 5)]
PARAMS = NetworkParams(network_id=NETWORK_ID, base_difficulty=0)
GENESIS = make_genesis(NETWORK_ID, {k.address: 100 * (i + 1) for i, k in enumerate(KEYS)})


def past_cone(tangle: Tangle, tx_id: TxId) -> set[TxId]:
    """Independent of the DAG's bitsets: a plain walk over parents."""
    seen = {tx_id}
    stack = [tx_id]
    while stack:
        tx = tangle.get(stack.pop())
        if tx.is_genesis_shaped:
            continue
        for parent in tx.parents:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def oracle_consistent(tangle: Tangle, tx_id: TxId) -> bool:
    cone = past_cone(tangle, tx_id)
    for member in cone:
        tx = tangle.get(member)
        if tx.is_genesis_shaped:
            continue
        own_cone = past_cone(tangle, member) - {member}
        total = 0
        for oid in tx.inputs:
            if oid.tx_id not in own_cone:
                return False
            outputs = tangle.get(oid.tx_id).outputs
            if oid.index >= len(outputs) or outputs[oid.index].address != address_of(tx.issuer):
                return False
            total += outputs[oid.index].amount
        if total != sum(o.amount for o in tx.outputs):
            return False
    spends = Counter(oid for member in cone for oid in tangle.get(member).inputs)
    return all(count == 1 for count in spends.values())


def reference_clash(tangle: Tangle, a: TxId, b: TxId) -> tuple[OutputId, TxId, TxId] | None:
    """R6 restated: the smallest output spent twice in the union of the two cones, with
    its two smallest spenders, by a scan of every transaction of the union."""
    spends: dict[OutputId, list[TxId]] = {}
    for member in past_cone(tangle, a) | past_cone(tangle, b):
        for oid in tangle.get(member).inputs:
            spends.setdefault(oid, []).append(member)
    clashes = [
        (oid, *sorted(spenders)[:2]) for oid, spenders in spends.items() if len(spenders) >= 2
    ]
    return min(clashes, default=None)  # type: ignore[return-value]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tangle = Tangle(GENESIS, PARAMS)
        self.order: list[Transaction] = []
        self.checked: set[TxId] = {GENESIS.id}
        self.clock = 0

    # -- helpers -----------------------------------------------------------------------

    def consistent_ids(self) -> list[TxId]:
        return [tx.id for tx in self.tangle if self.tangle.is_consistent(tx.id)]

    def attach(self, tx: Transaction) -> Transaction:
        self.tangle.attach(tx)
        self.order.append(tx)
        event(f"verdict {self.tangle.verdict(tx.id).reason.name}")
        return tx

    def next_timestamp(self) -> int:
        self.clock += 1
        return self.clock

    def approvable_pair(self, data: st.DataObject) -> tuple[TxId, TxId]:
        ids = self.consistent_ids()
        trunk = data.draw(st.sampled_from(ids), label="trunk")
        partners = [t for t in ids if self.tangle.can_approve(trunk, t)]
        branch = data.draw(st.sampled_from(partners), label="branch")
        return trunk, branch

    # -- rules -------------------------------------------------------------------------

    @rule(data=st.data())
    def valid_transfer(self, data: st.DataObject) -> None:
        parents = self.approvable_pair(data)
        view = self.tangle.unspent_seen_by(*parents)
        payer = data.draw(st.sampled_from(KEYS), label="payer")
        mine = sorted(oid for oid, o in view.items() if o.address == payer.address)
        if not mine:
            return
        inputs = data.draw(st.lists(st.sampled_from(mine), min_size=1, unique=True), label="in")
        total = sum(view[i].amount for i in inputs)
        payee = data.draw(st.sampled_from(KEYS), label="payee")
        amount = data.draw(st.integers(1, total), label="amount")
        payments = {payee.address: amount}
        if total > amount:
            payments[payer.address] = payments.get(payer.address, 0) + total - amount
        tx = self.attach(
            transfer(payer, PARAMS, parents, inputs, payments, timestamp=self.next_timestamp())
        )
        assert self.tangle.is_consistent(tx.id), self.tangle.verdict(tx.id)

    @precondition(lambda self: any(tx.inputs for tx in self.order))
    @rule(data=st.data())
    def conflicting_transfer(self, data: st.DataObject) -> None:
        """Spend again an output someone already spent, on parents that do not see it."""
        spent = [
            (oid, tx)
            for tx in self.order
            for oid in tx.inputs
            if self.tangle.ledger.output(oid) is not None  # an output that exists
        ]
        if not spent:
            return
        oid, first = data.draw(st.sampled_from(spent), label="spent output")
        owner = next(k for k in KEYS if k.public_key == first.issuer)
        blind = [
            t
            for t in self.consistent_ids()
            if not self.tangle.dag.in_past_cone(first.id, t)
            and self.tangle.dag.in_past_cone(oid.tx_id, t)
        ]
        if not blind:
            return
        parent = data.draw(st.sampled_from(blind), label="parent")
        amount = self.tangle.ledger.output(oid).amount  # type: ignore[union-attr]
        tx = self.attach(
            transfer(
                owner,
                PARAMS,
                (parent, parent),
                [oid],
                {owner.address: amount},
                timestamp=self.next_timestamp(),
            )
        )
        assert self.tangle.is_consistent(tx.id) == oracle_consistent(self.tangle, tx.id)
        assert (tx.id in self.tangle.ledger.spenders(oid)) == self.tangle.is_consistent(tx.id)

    @rule(data=st.data(), kind=st.sampled_from(["mismatch", "not_owned", "outside", "index"]))
    def invalid_transfer(self, data: st.DataObject, kind: str) -> None:
        parents = self.approvable_pair(data)
        view = self.tangle.unspent_seen_by(*parents)
        oid = data.draw(st.sampled_from(sorted(view)), label="output")
        output = view[oid]
        owner = next(k for k in KEYS if k.address == output.address)
        key, inputs, amount = owner, [oid], output.amount
        expected = {
            "mismatch": ConflictReason.AMOUNT_MISMATCH,
            "not_owned": ConflictReason.INPUT_NOT_OWNED,
            "outside": ConflictReason.INPUT_NOT_IN_CONE,
            "index": ConflictReason.INPUT_INDEX_OUT_OF_RANGE,
        }[kind]
        if kind == "mismatch":
            amount += data.draw(st.sampled_from([-1, 1])) if amount > 1 else 1
        elif kind == "not_owned":
            key = next(k for k in KEYS if k is not owner)
        elif kind == "outside":
            inputs = [OutputId(TxId(b"\xee" * 32), 0)]
        else:
            inputs = [OutputId(oid.tx_id, 126)]
        tx = self.attach(
            transfer(
                key, PARAMS, parents, inputs, {key.address: amount}, timestamp=self.next_timestamp()
            )
        )
        assert self.tangle.verdict(tx.id).reason is expected

    @rule(data=st.data())
    def join_a_conflict(self, data: st.DataObject) -> None:
        """Approve two consistent spenders of one output: R6 must refuse the pair."""
        pairs = [
            (a, b)
            for _, spenders in self.tangle.ledger.conflict_sets()
            for a in spenders
            for b in spenders
            if a < b and self.tangle.is_consistent(a) and self.tangle.is_consistent(b)
        ]
        if not pairs:
            return
        a, b = data.draw(st.sampled_from(pairs), label="rivals")
        assert not self.tangle.can_approve(a, b)
        key = data.draw(st.sampled_from(KEYS), label="issuer")
        tx = self.attach(transfer(key, PARAMS, (a, b), timestamp=self.next_timestamp()))
        assert self.tangle.verdict(tx.id).reason is ConflictReason.CONE_CONFLICT

    @rule(data=st.data())
    def approve_any_pair(self, data: st.DataObject) -> None:
        """An empty transaction on two arbitrary transactions, consistent or not."""
        ids = [tx.id for tx in self.tangle]
        trunk = data.draw(st.sampled_from(ids), label="trunk")
        branch = data.draw(st.sampled_from(ids), label="branch")
        key = data.draw(st.sampled_from(KEYS), label="issuer")
        self.attach(transfer(key, PARAMS, (trunk, branch), timestamp=self.next_timestamp()))

    @rule(data=st.data())
    def cone_clash_equals_the_reference(self, data: st.DataObject) -> None:
        ids = self.consistent_ids()
        a = data.draw(st.sampled_from(ids), label="a")
        b = data.draw(st.sampled_from(ids), label="b")
        dag = self.tangle.dag
        if a == b or dag.in_past_cone(a, b) or dag.in_past_cone(b, a):
            return  # R6 is asked only of parents that do not see each other
        expected = reference_clash(self.tangle, a, b)
        event(f"clash {expected is not None}")
        assert self.tangle.ledger.cone_clash(dag, (a, b)) == expected
        assert self.tangle.can_approve(a, b) == (expected is None)

    @rule(seed=st.integers(0, 2**32))
    def replay_shuffled(self, seed: int) -> None:
        replica = Tangle(GENESIS, PARAMS)
        shuffled = list(self.order)
        random.Random(seed).shuffle(shuffled)
        for tx in shuffled:
            replica.attach(tx)
        assert replica.unsolid_count == 0
        assert replica.tips() == self.tangle.tips()
        for tx in self.order:
            assert replica.verdict(tx.id) == self.tangle.verdict(tx.id)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def verdicts_match_the_oracle(self) -> None:
        for tx in self.order:
            if tx.id not in self.checked:
                assert self.tangle.is_consistent(tx.id) == oracle_consistent(self.tangle, tx.id), (
                    self.tangle.verdict(tx.id)
                )
                self.checked.add(tx.id)

    @invariant()
    def supply_is_conserved_in_every_consistent_cone(self) -> None:
        for tip in self.tangle.consistent_tips():
            utxos = self.tangle.unspent_seen_by(tip)  # raises on an output spent twice
            assert sum(o.amount for o in utxos.values()) == self.tangle.supply

    @invariant()
    def cone_clash_of_every_tip_pair_equals_the_reference(self) -> None:
        tips = self.tangle.consistent_tips()
        dag = self.tangle.dag
        for i, a in enumerate(tips):
            for b in tips[i + 1 :]:
                assert self.tangle.ledger.cone_clash(dag, (a, b)) == reference_clash(
                    self.tangle, a, b
                )

    @invariant()
    def conflict_sets_are_exactly_the_shared_spends(self) -> None:
        """Shared by consistent spenders: an inconsistent one spends nothing (§8.3)."""
        spenders: dict[OutputId, list[TxId]] = {}
        for tx in self.order:
            if not self.tangle.is_consistent(tx.id):
                continue
            for oid in tx.inputs:
                spenders.setdefault(oid, []).append(tx.id)
        expected = {oid: tuple(s) for oid, s in spenders.items() if len(s) > 1}
        assert dict(self.tangle.ledger.conflict_sets()) == expected


LedgerMachine.TestCase.settings = settings(
    LedgerMachine.TestCase.settings, max_examples=50, stateful_step_count=30
)
TestLedger = LedgerMachine.TestCase
