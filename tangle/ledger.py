"""The UTXO ledger and past-cone validity (layer 3, pure; PROTOCOL §8).

Value lives in outputs. A transaction is *consistent* when its whole past cone is a
valid ledger history: every input was created inside that cone by a consistent
transaction, belongs to the issuer, and is spent by no other transaction of the cone;
inputs and outputs balance; and nothing in the cone is spent twice. A past cone never
changes, so the verdict is computed once, on arrival, and is the same on every node
(above a snapshot, §8.5, a spend of pruned history may be named differently; it is
inconsistent all the same).

Inconsistent transactions stay in the DAG with a :class:`ConflictReason`; they are
never selected as tips and every approver of one is inconsistent too (§8.3 R1). So an
inconsistent transaction lies in no consistent past cone, and R4 and R6, which are only
asked once R1 holds, can never meet it: it spends nothing. Only consistent
transactions are registered as spenders, and anyone's made-up spends of random (or a
victim's) outputs make no output contested (issue 12, finding 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from tangle.address import Address, encode_address
from tangle.constants import MAX_SUPPLY, NULL_HASH, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from tangle.dag import Dag
from tangle.errors import InconsistentCone, InvalidGenesis, UnknownTransaction
from tangle.hashing import address_of
from tangle.snapshot import Snapshot
from tangle.transaction import Output, OutputId, Transaction, TxId


class ConflictReason(IntEnum):
    """Why a transaction is conflicting (§8.3, §9); the values are API codes."""

    NONE = 0
    PARENT_CONFLICTING = 1
    """R1: approves a transaction whose past cone is inconsistent."""
    INPUT_NOT_IN_CONE = 2
    """R2: an input's creating transaction is not in the past cone."""
    INPUT_INDEX_OUT_OF_RANGE = 3
    """R2: the creating transaction has no output at that index."""
    INPUT_NOT_OWNED = 4
    """R3: an input is locked to another address than the issuer's."""
    DOUBLE_SPEND = 5
    """R4: an input is already spent by another transaction of the past cone."""
    AMOUNT_MISMATCH = 6
    """R5: the inputs do not add up to the outputs."""
    CONE_CONFLICT = 7
    """R6: the trunk's and the branch's cones spend one output in two ways."""
    LOST_CONFLICT = 8
    """§9: a rival spending the same output was confirmed instead."""
    PRUNED = 9
    """§8.5: an entry point of a snapshot that was not confirmed when it was pruned, or a
    transaction that approves history older than a snapshot without seeing all of it."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of the past-cone rules for one transaction."""

    reason: ConflictReason
    detail: str = ""

    @property
    def consistent(self) -> bool:
        return self.reason is ConflictReason.NONE


CONSISTENT = Verdict(ConflictReason.NONE)


def validate_genesis(genesis: Transaction, network_id: int) -> None:
    """§8.1: the genesis allocates the whole supply and nothing else.

    Raises:
        InvalidGenesis: naming the broken condition.
    """
    if genesis.network_id != network_id:
        raise InvalidGenesis(f"network id: expected {network_id}, got {genesis.network_id}")
    if not genesis.is_genesis_shaped:
        raise InvalidGenesis("trunk and branch must both be the null hash")
    if genesis.inputs:
        raise InvalidGenesis(f"expected no inputs, got {len(genesis.inputs)}")
    if not genesis.outputs:
        raise InvalidGenesis("expected at least one output (the supply), got none")
    supply = sum(o.amount for o in genesis.outputs)
    if supply > MAX_SUPPLY:
        raise InvalidGenesis(f"supply: expected at most {MAX_SUPPLY}, got {supply}")
    if genesis.issuer != bytes(PUBLIC_KEY_SIZE) or genesis.signature != bytes(SIGNATURE_SIZE):
        raise InvalidGenesis("issuer and signature must be all zero bytes")
    if genesis.nonce != 0:
        raise InvalidGenesis(f"nonce: expected 0, got {genesis.nonce}")


def make_genesis(
    network_id: int, allocations: Mapping[Address, int], timestamp: int = 0
) -> Transaction:
    """A genesis transaction allocating ``allocations`` (address -> amount), per §8.1."""
    genesis = Transaction(
        network_id=network_id,
        timestamp=timestamp,
        trunk=TxId(NULL_HASH),
        branch=TxId(NULL_HASH),
        issuer=bytes(PUBLIC_KEY_SIZE),
        outputs=tuple(Output(a, n) for a, n in sorted(allocations.items())),
    )
    validate_genesis(genesis, network_id)
    return genesis


class Ledger:
    """Every output ever created, who spends it, and the past-cone rules (§8)."""

    __slots__ = (
        "_base",
        "_contested",
        "_contested_inputs",
        "_contested_mask",
        "_created",
        "_pruned",
        "_roots",
        "_spenders",
        "supply",
    )

    def __init__(self, base: Transaction | Snapshot) -> None:
        snapshot = base if isinstance(base, Snapshot) else Snapshot.of_genesis(base)
        self._created: dict[TxId, tuple[Output, ...]] = {
            entry.tx.id: entry.tx.outputs for entry in snapshot.entry_points
        }
        self._roots = frozenset(snapshot.roots)
        self._pruned = snapshot.pruned > 0
        self._base: dict[OutputId, Output] = dict(snapshot.outputs)
        """§8.5: outputs created in every past cone (the genesis's, or a snapshot's)."""
        self._spenders: dict[OutputId, list[TxId]] = {}
        self._contested: dict[OutputId, list[TxId]] = {}
        self._contested_inputs: dict[TxId, list[OutputId]] = {}
        """Per spender of a contested output: its contested inputs."""
        self._contested_mask = 0
        """The DAG's bit mask of every spender of a contested output (R6's candidates)."""
        self.supply: int = snapshot.supply
        """The total allocated by the genesis; conserved forever (§8.2)."""

    def output(self, output_id: OutputId) -> Output | None:
        """The output named by ``output_id``, if its transaction was registered or it is
        unspent in the snapshot the ledger starts from (an entry point's outputs spent
        before the snapshot are gone)."""
        if output_id.tx_id in self._roots:
            return self._base.get(output_id)
        outputs = self._created.get(output_id.tx_id)
        if outputs is None or output_id.index >= len(outputs):
            return self._base.get(output_id)
        return outputs[output_id.index]

    def in_base(self, output_id: OutputId) -> bool:
        """Is ``output_id`` one of the genesis's or the snapshot's outputs (§8.5)?"""
        return output_id in self._base

    def outputs_of(self, tx_id: TxId) -> tuple[Output, ...]:
        try:
            return self._created[tx_id]
        except KeyError:
            raise UnknownTransaction(tx_id) from None

    def spenders(self, output_id: OutputId) -> tuple[TxId, ...]:
        """Every consistent registered transaction spending ``output_id``, in arrival
        order (an inconsistent one spends nothing, §8.3)."""
        return tuple(self._spenders.get(output_id, ()))

    def conflict_sets(self) -> Iterator[tuple[OutputId, tuple[TxId, ...]]]:
        """§8.4: each output spent by two or more consistent transactions, with them."""
        for output_id, spenders in self._contested.items():
            yield output_id, tuple(spenders)

    def register(self, tx: Transaction, dag: Dag, *, consistent: bool) -> None:
        """Record what ``tx`` creates and, if its verdict is consistent, what it spends;
        called once per attached transaction, after ``dag.add`` (§8.3: an inconsistent
        transaction is in no consistent past cone, so no rule ever counts its spends)."""
        self._created[tx.id] = tx.outputs
        if not consistent:
            return
        for output_id in tx.inputs:
            spenders = self._spenders.setdefault(output_id, [])
            spenders.append(tx.id)
            if len(spenders) < 2:
                continue
            self._contested[output_id] = spenders
            fresh = spenders if len(spenders) == 2 else spenders[-1:]
            for spender in fresh:
                self._contested_inputs.setdefault(spender, []).append(output_id)
            self._contested_mask |= dag.mask_of(fresh)

    def evaluate(self, tx: Transaction, dag: Dag, consistent: Mapping[TxId, bool]) -> Verdict:
        """Apply the past-cone rules R1..R6 of §8.3, in order, to a solid ``tx``.

        ``tx`` must not be registered yet; its parents must be in ``dag``;
        ``consistent`` answers for every transaction in ``dag``.
        """
        parents = tuple(dict.fromkeys(tx.parents))
        for parent in parents:  # R1
            if not consistent[parent]:
                return Verdict(
                    ConflictReason.PARENT_CONFLICTING,
                    f"parent {parent.hex()} is conflicting",
                )

        def in_cone(ancestor: TxId) -> bool:
            return any(dag.in_past_cone(ancestor, p) for p in parents)

        issuer_address = address_of(tx.issuer)
        total_in = 0
        for n, output_id in enumerate(tx.inputs):
            output = self._base.get(output_id)  # §8.5: created in every cone
            if output is None:
                creator = output_id.tx_id
                if creator in self._roots and output_id.index < len(self._created[creator]):
                    return Verdict(  # R4, against history the snapshot replaced
                        ConflictReason.DOUBLE_SPEND,
                        f"inputs[{n}]: already spent before the snapshot (§8.5)",
                    )
                if creator not in dag or not in_cone(creator):  # R2
                    pruned = " nor unspent in the snapshot (§8.5)" if self._pruned else ""
                    return Verdict(
                        ConflictReason.INPUT_NOT_IN_CONE,
                        f"inputs[{n}]: transaction {creator.hex()} is not in the past cone"
                        + pruned,
                    )
                output = self.output(output_id)
            if output is None:  # R2
                created = len(self._created[output_id.tx_id])
                return Verdict(
                    ConflictReason.INPUT_INDEX_OUT_OF_RANGE,
                    f"inputs[{n}]: index {output_id.index}, but the transaction has "
                    f"{created} outputs",
                )
            if output.address != issuer_address:  # R3
                return Verdict(
                    ConflictReason.INPUT_NOT_OWNED,
                    f"inputs[{n}]: locked to {encode_address(output.address)}, "
                    f"issuer is {encode_address(Address(issuer_address))}",
                )
            rivals = [s for s in self._spenders.get(output_id, ()) if in_cone(s)]  # R4
            if rivals:
                return Verdict(
                    ConflictReason.DOUBLE_SPEND,
                    f"inputs[{n}]: already spent by {min(rivals).hex()} in the past cone",
                )
            total_in += output.amount
        total_out = sum(o.amount for o in tx.outputs)
        if total_in != total_out:  # R5
            return Verdict(
                ConflictReason.AMOUNT_MISMATCH,
                f"inputs add up to {total_in}, outputs to {total_out}",
            )
        if len(parents) == 2 and not (
            dag.in_past_cone(parents[0], parents[1]) or dag.in_past_cone(parents[1], parents[0])
        ):
            clash = self.cone_clash(dag, parents)  # R6
            if clash is not None:
                output_id, first, second = clash
                return Verdict(
                    ConflictReason.CONE_CONFLICT,
                    f"output {output_id.hex()} is spent by both {first.hex()} and "
                    f"{second.hex()} in the past cone",
                )
        return CONSISTENT

    def cone_clash(self, dag: Dag, parents: tuple[TxId, ...]) -> tuple[OutputId, TxId, TxId] | None:
        """The smallest output with two spenders inside the union of the parents' cones.

        The parents must be consistent (R1), so each one's own cone spends no output
        twice: of the spenders of a clashing output, at least one lies in the first cone
        only and one in the second only. So it is enough to look at the spenders of
        contested outputs in the part of one cone that the other lacks, whichever part
        holds fewer: a few mask operations over the cones' ancestor bitsets, then only
        those spenders' contested inputs. Conflicts elsewhere in the ledger cost
        nothing. The answer (smallest output id, its two smallest spender ids) does not
        depend on the order in which transactions arrived, so every node reports the
        same detail.
        """
        if not self._contested_mask or len(parents) < 2:
            return None
        first, second = (dag.cone_mask((p,)) for p in parents[:2])
        union = first | second
        only_first = first & ~second & self._contested_mask
        only_second = second & ~first & self._contested_mask
        if not only_first or not only_second:
            return None
        candidates = min(only_first, only_second, key=int.bit_count)
        clashes = []
        seen: set[OutputId] = set()
        for spender in dag.ids_in(candidates):
            for output_id in self._contested_inputs[spender]:
                if output_id in seen:
                    continue
                seen.add(output_id)
                spenders = self._contested[output_id]
                inside = sorted(s for s in spenders if union & dag.mask_of((s,)))
                if len(inside) >= 2:
                    clashes.append((output_id, inside[0], inside[1]))
        return min(clashes, default=None)

    def unspent_in_cone(self, cone: Iterable[Transaction]) -> dict[OutputId, Output]:
        """The unspent outputs as seen by a transaction whose past cone is ``cone``.

        The oracle of §8.2: for a consistent cone the amounts add up to the supply. The
        base (genesis or snapshot outputs) counts as created in every cone (§8.5).

        Raises:
            InconsistentCone: an output is spent twice, or spent before it exists, in ``cone``.
        """
        created: dict[OutputId, Output] = dict(self._base)
        spent: dict[OutputId, TxId] = {}
        for tx in cone:
            if tx.id in self._roots:
                continue  # its unspent outputs are in the base already
            for index, output in enumerate(tx.outputs):
                created[OutputId(tx.id, index)] = output
            for output_id in tx.inputs:
                if output_id in spent:
                    raise InconsistentCone(
                        f"output {output_id.hex()} is spent by both {spent[output_id].hex()} "
                        f"and {tx.id.hex()} (PROTOCOL §8.4)"
                    )
                spent[output_id] = tx.id
        missing = [o for o in spent if o not in created]
        if missing:
            raise InconsistentCone(
                f"output {missing[0].hex()} is spent but not created in the cone (PROTOCOL §8.3)"
            )
        return {o: out for o, out in created.items() if o not in spent}
