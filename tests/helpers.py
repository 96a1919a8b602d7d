"""Test helpers: deterministic keys and one-line transaction builders. For tests only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tangle import Address, Keypair, NetworkParams, OutputId, Transaction, TxId, build

NETWORK_ID = 0x7465_7374  # "test"


def keypair(n: int) -> Keypair:
    """A deterministic keypair for tests only: never hold value with it."""
    return Keypair(n.to_bytes(32, "big"))


def transfer(
    key: Keypair,
    params: NetworkParams,
    parents: tuple[TxId, TxId],
    inputs: Iterable[OutputId] = (),
    payments: Mapping[Address, int] | None = None,
    *,
    payload: bytes = b"",
    timestamp: int = 1_700_000_000_000,
) -> Transaction:
    """A signed transaction with valid work on ``parents``."""
    return build(
        key,
        params,
        trunk=parents[0],
        branch=parents[1],
        timestamp=timestamp,
        inputs=inputs,
        payments=payments,
        payload=payload,
    )


def output_of(tx: Transaction, address: Address) -> OutputId:
    """The id of ``tx``'s output locked to ``address``."""
    for index, output in enumerate(tx.outputs):
        if output.address == address:
            return OutputId(tx.id, index)
    raise LookupError(f"no output to {address.hex()} in {tx.id.hex()}")


class Clock:
    """A clock a test moves by hand (``clock.t += 5``): the node's ``clock`` parameter."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t
