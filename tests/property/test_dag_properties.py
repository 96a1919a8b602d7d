"""DAG invariants on random DAGs, against networkx as the oracle (PROTOCOL §7).

The DAGs include roots (snapshot entry points) and transactions that approve only old
ones."""

from __future__ import annotations

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st

from tangle import Dag, TxId


def tid(i: int) -> TxId:
    return TxId(i.to_bytes(32, "big"))


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[Dag, nx.DiGraph]:
    """A Dag and the same graph in networkx, edges pointing from approver to approved."""
    n = draw(st.integers(1, 40))
    dag = Dag(tid(0))
    graph = nx.DiGraph()
    graph.add_node(0)
    for i in range(1, n):
        if draw(st.integers(0, 19)) == 0:
            dag.add_root(tid(i))
            graph.add_node(i)
            continue
        # Bias parents towards recent transactions, as real tangles are.
        low = draw(st.integers(0, i - 1))
        trunk = draw(st.integers(low, i - 1))
        branch = draw(st.integers(low, i - 1))
        dag.add(tid(i), tid(trunk), tid(branch))
        graph.add_edges_from([(i, trunk), (i, branch)])
    return dag, graph


@given(random_dags())
def test_acyclic_and_tips(dags) -> None:  # type: ignore[no-untyped-def]  # §7.2, §7.3
    dag, graph = dags
    assert nx.is_directed_acyclic_graph(graph)
    unapproved = {v for v in graph if graph.in_degree(v) == 0}
    assert dag.tips() == {tid(v) for v in unapproved}
    assert [int.from_bytes(t, "big") for t in dag] == list(range(len(graph)))  # topological


@given(random_dags())
def test_weights_and_score_match_networkx(dags) -> None:  # type: ignore[no-untyped-def]  # §7.5
    dag, graph = dags
    for v in graph:
        assert dag.cumulative_weight(tid(v)) == 1 + len(nx.ancestors(graph, v))
        assert dag.score(tid(v)) == 1 + len(nx.descendants(graph, v))


@given(random_dags())
def test_height_and_depth_match_networkx(dags) -> None:  # type: ignore[no-untyped-def]  # §7.4
    dag, graph = dags
    reverse = graph.reverse()
    for v in graph:
        below = graph.subgraph(nx.descendants(graph, v) | {v})
        above = reverse.subgraph(nx.ancestors(graph, v) | {v})
        assert dag.height(tid(v)) == nx.dag_longest_path_length(below)
        assert dag.depth(tid(v)) == nx.dag_longest_path_length(above)


@given(random_dags(), st.data())
def test_cones_match_networkx(dags, data) -> None:  # type: ignore[no-untyped-def]  # §7.6
    dag, graph = dags
    a = data.draw(st.integers(0, len(graph) - 1))
    b = data.draw(st.integers(0, len(graph) - 1))
    assert dag.in_past_cone(tid(a), tid(b)) == (a == b or nx.has_path(graph, b, a))
    assert set(dag.past_cone(tid(b))) == {tid(v) for v in nx.descendants(graph, b) | {b}}
    assert dag.future_cone(tid(a)) == {tid(v) for v in nx.ancestors(graph, a)}
    assert set(dag.approvers(tid(a))) == {tid(v) for v in graph.predecessors(a)}


@given(random_dags(), st.data())
def test_cone_unions_and_masks_match_networkx(dags, data) -> None:  # type: ignore[no-untyped-def]
    dag, graph = dags
    picks = data.draw(st.lists(st.integers(0, len(graph) - 1), min_size=1, max_size=4))
    cones = [nx.descendants(graph, v) | {v} for v in picks]
    assert set(dag.past_cone_of_all(tid(v) for v in picks)) == {tid(v) for v in set().union(*cones)}
    common = set.intersection(*cones)
    assert list(dag.common_past_cone(tid(v) for v in picks)) == [tid(v) for v in sorted(common)]
    named = data.draw(st.lists(st.integers(0, len(graph) - 1), max_size=3))
    mask = dag.mask_of(tid(v) for v in named)
    assert dag.covers([tid(v) for v in picks], mask) == (set(named) <= set().union(*cones))


@given(st.integers(1, 300), st.data())
def test_masks_name_cones_and_ids_in_arrival_order(n: int, data: st.DataObject) -> None:  # §7.6
    """``cone_mask``/``mask_of`` and ``ids_in`` (which reads a mask bit by bit when it is
    sparse, through its digits when not) agree with the cones and with arrival order."""
    dag = Dag(tid(0))
    for i in range(1, n):
        trunk = data.draw(st.integers(max(0, i - 5), i - 1))
        dag.add(tid(i), tid(trunk), tid(data.draw(st.integers(0, i - 1))))
    chosen = data.draw(st.lists(st.integers(0, n - 1), max_size=8))
    ids = [tid(i) for i in chosen]
    union = {t for x in ids for t in dag.past_cone(x)}
    assert list(dag.ids_in(dag.cone_mask(ids))) == [t for t in dag if t in union]
    assert list(dag.ids_in(dag.mask_of(ids))) == [t for t in dag if t in set(ids)]
    assert dag.covers(ids, dag.mask_of(union))
