"""A network's genesis: the dev network's keys and genesis, genesis files (layer 5).

A dev network's genesis splits the supply over ``DEV_FAUCETS`` keys that anyone can
derive from the network id: for development only, never for value. Other networks are
fixed by a genesis file (``tangle genesis`` writes one) that every node of the network
reads; :func:`resolve_genesis` turns a node's configuration into its genesis and
network parameters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pow.difficulty import DEFAULT_BASE_DIFFICULTY
from tangle.address import Address, decode_address, encode_address
from tangle.errors import TangleError
from tangle.ledger import make_genesis
from tangle.node.errors import ConfigError
from tangle.signing import Keypair
from tangle.transaction import Transaction

DEV_NETWORK_ID = 0x7467_6C64_6576_6E31  # "tgldevn1"
DEV_SUPPLY = 10**15
DEV_FAUCETS = 16
"""The dev supply is split over this many faucet keys, so that nodes of one devnet never
spend the same faucet outputs (each node uses the key of its ``faucet_index``)."""
DEV_BASE_DIFFICULTY = 8


def dev_faucet_key(network_id: int, index: int = 0) -> Keypair:
    """Dev faucet key ``index``, derived from the network id: for dev networks only,
    never for value (anyone can derive it)."""
    seed = hashlib.blake2b(
        network_id.to_bytes(8, "big") + index.to_bytes(2, "big"),
        digest_size=32,
        person=b"tangle/devfaucet",
    ).digest()
    return Keypair(seed)


def dev_genesis(network_id: int = DEV_NETWORK_ID) -> Transaction:
    """The genesis of a dev network: the supply split evenly over the faucet keys."""
    share = DEV_SUPPLY // DEV_FAUCETS
    allocations: dict[Address, int] = {
        dev_faucet_key(network_id, i).address: share for i in range(DEV_FAUCETS)
    }
    return make_genesis(network_id, allocations)


@dataclass(frozen=True, slots=True)
class GenesisFile:
    """What a genesis file holds: the network's constants and first allocations."""

    network_id: int
    base_difficulty: int
    allocations: dict[Address, int]
    timestamp: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.base_difficulty <= 64:
            raise ConfigError(f"base_difficulty: expected 0..64, got {self.base_difficulty}")

    def genesis(self) -> Transaction:
        return make_genesis(self.network_id, self.allocations, self.timestamp)

    def to_json(self) -> dict[str, Any]:
        return {
            "network_id": f"{self.network_id:#x}",
            "base_difficulty": self.base_difficulty,
            "timestamp": self.timestamp,
            "allocations": [
                {"address": encode_address(a), "amount": str(n)}
                for a, n in sorted(self.allocations.items())
            ],
            "genesis_id": self.genesis().id.hex(),
        }


def read_genesis_file(path: Path) -> GenesisFile:
    """Parse a genesis file; every problem is a :class:`ConfigError` naming the field.

    Raises:
        ConfigError: unreadable, not JSON, a missing or bad field, an invalid genesis, or
            a ``genesis_id`` that does not match the allocations.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"genesis file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"genesis file {path}: expected a JSON object")
    try:
        network_id = int(str(data["network_id"]), 0)
        difficulty = int(data.get("base_difficulty", DEFAULT_BASE_DIFFICULTY))
        timestamp = int(data.get("timestamp", 0))
        allocations: dict[Address, int] = {}
        for n, row in enumerate(data["allocations"]):
            address = decode_address(str(row["address"]))
            if address in allocations:
                raise ConfigError(f"genesis file {path}: allocations[{n}]: address repeated")
            allocations[address] = int(str(row["amount"]))
    except KeyError as exc:
        raise ConfigError(f"genesis file {path}: missing field {exc}") from None
    except (TypeError, ValueError, TangleError) as exc:
        raise ConfigError(f"genesis file {path}: {exc}") from None
    try:
        result = GenesisFile(network_id, difficulty, allocations, timestamp)
    except ConfigError as exc:
        raise ConfigError(f"genesis file {path}: {exc}") from None
    try:
        genesis_id = result.genesis().id.hex()
    except TangleError as exc:
        raise ConfigError(f"genesis file {path}: {exc}") from None
    if "genesis_id" in data and data["genesis_id"] != genesis_id:
        raise ConfigError(
            f"genesis file {path}: genesis_id: expected {genesis_id} for these allocations, "
            f"got {data['genesis_id']}"
        )
    return result
