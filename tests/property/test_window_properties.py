"""The weight window against networkx: exact inside the window, evictions included."""

from __future__ import annotations

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st

from tangle.window import WeightWindow


def tid(i: int) -> bytes:
    return i.to_bytes(32, "big")


@st.composite
def arrivals(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Parents for transactions 1..n (0 is the genesis), mostly recent ones."""
    n = draw(st.integers(1, 400))
    out = []
    for i in range(1, n):
        low = max(0, i - draw(st.integers(1, 40)))
        out.append((draw(st.integers(low, i - 1)), draw(st.integers(low, i - 1))))
    return out


@given(arrivals(), st.sampled_from([128, 192, 1024]))
def test_weights_equal_one_plus_descendants(parents, capacity) -> None:  # type: ignore[no-untyped-def]
    window = WeightWindow(capacity)
    graph = nx.DiGraph()
    graph.add_node(0)
    window.add(tid(0), (), time=0.0)
    for i, (a, b) in enumerate(parents, start=1):
        window.add(tid(i), (tid(a), tid(b)), time=float(i))
        graph.add_edges_from([(i, a), (i, b)])
    n = len(parents) + 1
    inside = [i for i in range(n) if tid(i) in window]
    assert len(inside) == len(window) >= min(n, capacity - 64)
    assert inside == list(range(n - len(inside), n))  # the most recent ones
    for i in inside:
        assert window.weight(tid(i)) == 1 + len(nx.ancestors(graph, i)), i
    for i in inside[-20:]:
        slot = window.slot(tid(i))
        cone = {int.from_bytes(window.id_at(s), "big") for s in window.future_cone(slot)}
        assert cone == nx.ancestors(graph, i)
        for j in inside[-20:]:
            expected = i == j or nx.has_path(graph, j, i)
            assert window.in_past_cone(slot, window.slot(tid(j))) == expected
    tips = {int.from_bytes(window.id_at(s), "big") for s in window.tips()}
    assert tips == {i for i in inside if graph.in_degree(i) == 0}
