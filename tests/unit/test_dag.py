"""The DAG on small hand-made graphs whose answers were worked out on paper (PROTOCOL §7).

G <- A, B        A approves G (trunk = branch), B approves G
A, B <- C        C approves A and B
A <- D           D approves A twice (one edge, §7.1)
C, D <- E        E approves C and D
B <- F           F approves B twice

height: G0 A1 B1 C2 D2 E3 F2          (longest path down to G)
depth:  E0 F0 C1 D1 A2 B2 G3          (longest path up to a tip)
H:      E1 F1 C2 D2 A4 B4 G7          (1 + number of approvers, direct or not)
score:  G1 A2 B2 C4 D3 E6 F3          (past cone, itself and G included)
"""

from __future__ import annotations

import pytest

from tangle import Dag, TxId, UnknownTransaction


def name(letter: str) -> TxId:
    return TxId(letter.encode() * 32)


@pytest.fixture
def dag() -> Dag:
    d = Dag(name("G"))
    for tx, trunk, branch in ["AGG", "BGG", "CAB", "DAA", "ECD", "FBB"]:
        d.add(name(tx), name(trunk), name(branch))
    return d


def by_letter(dag: Dag, metric: str) -> dict[str, int]:
    return {t.decode()[0]: getattr(dag, metric)(t) for t in dag}


def test_height(dag: Dag) -> None:  # §7.4
    assert by_letter(dag, "height") == {"G": 0, "A": 1, "B": 1, "C": 2, "D": 2, "E": 3, "F": 2}


def test_depth(dag: Dag) -> None:  # §7.4
    assert by_letter(dag, "depth") == {"G": 3, "A": 2, "B": 2, "C": 1, "D": 1, "E": 0, "F": 0}


def test_cumulative_weight(dag: Dag) -> None:  # §7.5, each approver counted once
    assert by_letter(dag, "cumulative_weight") == {
        "G": 7,
        "A": 4,
        "B": 4,
        "C": 2,
        "D": 2,
        "E": 1,
        "F": 1,
    }


def test_score(dag: Dag) -> None:  # §7.5
    assert by_letter(dag, "score") == {"G": 1, "A": 2, "B": 2, "C": 4, "D": 3, "E": 6, "F": 3}


def test_tips_and_edges(dag: Dag) -> None:  # §7.1, §7.3
    assert dag.tips() == {name("E"), name("F")}
    assert dag.parents(name("D")) == (name("A"),)  # trunk == branch: one edge
    assert dag.parents(name("C")) == (name("A"), name("B"))
    assert dag.parents(name("G")) == ()
    assert dag.approvers(name("A")) == (name("C"), name("D"))
    assert dag.is_tip(name("F"))
    assert not dag.is_tip(name("A"))
    assert dag.genesis == name("G")
    assert len(dag) == 7
    assert next(iter(dag)) == name("G")


def test_cones(dag: Dag) -> None:  # §7.6
    assert set(dag.past_cone(name("E"))) == {name(x) for x in "ECDABG"}
    assert dag.future_cone(name("B")) == {name(x) for x in "CEF"}
    assert dag.in_past_cone(name("B"), name("E"))
    assert dag.in_past_cone(name("E"), name("E"))
    assert not dag.in_past_cone(name("F"), name("E"))
    assert set(dag.past_cone_of_all((name("D"), name("F")))) == {name(x) for x in "DAFBG"}


def test_weight_counts_a_diamond_once() -> None:
    """The double-counting bug (reference P1): summing approvers' weights gives 4, not 3."""
    d = Dag(name("G"))
    d.add(name("A"), name("G"), name("G"))
    d.add(name("B"), name("A"), name("A"))
    d.add(name("C"), name("A"), name("A"))
    d.add(name("D"), name("B"), name("C"))
    assert d.cumulative_weight(name("A")) == 4
    assert d.cumulative_weight(name("G")) == 5


def test_unknown_parent_and_duplicate(dag: Dag) -> None:
    with pytest.raises(UnknownTransaction, match="unknown transaction " + "5a" * 32):
        dag.add(name("Y"), name("Z"), name("A"))
    assert name("Y") not in dag  # nothing half-added
    with pytest.raises(ValueError, match="already in the DAG"):
        dag.add(name("E"), name("A"), name("B"))
    with pytest.raises(UnknownTransaction):
        dag.height(name("Q"))
