"""Hypothesis strategies for protocol values."""

from __future__ import annotations

from hypothesis import strategies as st

from tangle import Address, Output, OutputId, Transaction, TxId
from tangle.constants import MAX_SUPPLY

hashes = st.binary(min_size=32, max_size=32)
output_ids = st.builds(OutputId, hashes.map(TxId), st.integers(0, 126))
outputs = st.builds(Output, hashes.map(Address), st.integers(1, MAX_SUPPLY))


@st.composite
def transactions(draw: st.DrawFn, max_items: int = 6) -> Transaction:
    inputs = draw(st.lists(output_ids, max_size=max_items, unique=True))
    outs = draw(st.lists(outputs, max_size=max_items, unique_by=lambda o: o.address))
    return Transaction(
        network_id=draw(st.integers(0, 2**64 - 1)),
        timestamp=draw(st.integers(0, 2**63 - 1)),
        trunk=TxId(draw(hashes)),
        branch=TxId(draw(hashes)),
        issuer=draw(hashes),
        inputs=tuple(sorted(inputs)),
        outputs=tuple(sorted(outs, key=lambda o: o.address)),
        payload=draw(st.binary(max_size=300)),
        signature=draw(st.binary(min_size=64, max_size=64)),
        nonce=draw(st.integers(0, 2**64 - 1)),
    )
