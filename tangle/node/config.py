"""Node configuration: defaults, a TOML file, environment variables, arguments.

Later sources override earlier ones: defaults < ``--config FILE`` < ``TANGLE_*``
environment variables < command-line arguments. Binds to 127.0.0.1 unless told.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tangle.node.errors import ConfigError
from tangle.node.genesis import (
    DEV_BASE_DIFFICULTY,
    DEV_FAUCETS,
    DEV_NETWORK_ID,
    dev_genesis,
    read_genesis_file,
)
from tangle.transaction import Transaction
from tangle.validation import NetworkParams


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    data_dir: Path = Path("tangle-data")
    host: str = "127.0.0.1"
    api_port: int = 14265
    peers: tuple[str, ...] = ()
    dev: bool = False
    network_id: int = DEV_NETWORK_ID
    base_difficulty: int = DEV_BASE_DIFFICULTY
    confirm_interval: float = 0.1
    """Seconds between confirmation passes, at least (a pass that took long waits ten
    times its own duration, so passes never take more than a tenth of the loop)."""
    tip_wait: float = 0.1
    """Seconds a payment may stay unapproved before this node approves it with an empty
    transaction (lower: faster confirmation on a quiet network, more empty ones)."""
    liveness_interval: float = 0.05
    """Seconds between liveness checks (a payment waiting ``tip_wait``, an idle tangle, tips
    piling up: then the node issues an empty transaction; see ``LivenessPolicy``)."""
    faucet_index: int = 0
    """Which of the dev faucet keys this node pays from (0..15)."""
    node_seed: bytes = field(default=b"", repr=False)
    """The node's own key (for consolidation transactions); random when empty."""
    prune_age: float = 3600.0
    """Seconds of history kept whole; older confirmed history is pruned into a snapshot
    (PROTOCOL §8.5). 0 turns pruning off."""
    max_transactions: int = 50_000
    """Transactions kept in memory and on disk at most (older confirmed ones are pruned
    sooner when there are more); bounds memory and disk whatever the traffic."""
    prune_interval: float = 30.0
    """Seconds between pruning checks."""
    genesis: str = ""
    """A genesis file (``tangle genesis`` writes one): required without ``--dev``; it fixes
    the network id, the base difficulty and the allocations every node must agree on."""
    max_in_flight: int = 1024
    """Submissions admitted at once; past that, and past a commit lag of
    ``max_commit_lag`` seconds or a half-full gossip queue, the API answers 503 with
    ``Retry-After`` before reading the body (tangle.node.load)."""
    max_commit_lag: float = 2.0
    snapshot_from: str = ""
    """A peer's API URL: a node with an empty data dir starts from that peer's snapshot
    instead of the genesis, and fetches the rest by gossip."""

    def __post_init__(self) -> None:
        if not 0 <= self.api_port <= 65535:
            raise ConfigError(f"api_port: expected 0..65535, got {self.api_port}")
        if not 0 <= self.base_difficulty <= 64:
            raise ConfigError(f"base_difficulty: expected 0..64, got {self.base_difficulty}")
        if not self.tip_wait > 0:
            raise ConfigError(f"tip_wait: expected seconds > 0, got {self.tip_wait}")
        if self.confirm_interval <= 0 or self.liveness_interval <= 0:
            raise ConfigError("confirm_interval and liveness_interval must be positive")
        if not 0 <= self.faucet_index < DEV_FAUCETS:
            raise ConfigError(
                f"faucet_index: expected 0..{DEV_FAUCETS - 1}, got {self.faucet_index}"
            )
        if self.prune_age < 0 or self.prune_interval <= 0:
            raise ConfigError("prune_age must be >= 0 and prune_interval positive")
        if self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight: expected >= 1, got {self.max_in_flight}")
        if self.max_commit_lag <= 0:
            raise ConfigError(f"max_commit_lag: expected > 0 s, got {self.max_commit_lag}")
        if self.max_transactions < 100:
            raise ConfigError(f"max_transactions: expected >= 100, got {self.max_transactions}")
        if self.snapshot_from and not self.snapshot_from.startswith(("http://", "https://")):
            raise ConfigError(f"snapshot_from: expected an http:// URL, got {self.snapshot_from!r}")
        for peer in self.peers:
            if not peer.startswith(("http://", "https://")):
                raise ConfigError(f"peer: expected an http:// URL, got {peer!r}")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tangle.sqlite3"


_ENV = {
    "TANGLE_DATA_DIR": "data_dir",
    "TANGLE_HOST": "host",
    "TANGLE_API_PORT": "api_port",
    "TANGLE_PEERS": "peers",
    "TANGLE_DEV": "dev",
    "TANGLE_NETWORK_ID": "network_id",
    "TANGLE_BASE_DIFFICULTY": "base_difficulty",
    "TANGLE_FAUCET_INDEX": "faucet_index",
    "TANGLE_PRUNE_AGE": "prune_age",
    "TANGLE_MAX_TRANSACTIONS": "max_transactions",
    "TANGLE_MAX_IN_FLIGHT": "max_in_flight",
    "TANGLE_TIP_WAIT": "tip_wait",
    "TANGLE_SNAPSHOT_FROM": "snapshot_from",
    "TANGLE_GENESIS": "genesis",
}


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(NodeConfig)}
    if name not in kinds:
        raise ConfigError(f"unknown setting {name!r}")
    kind = kinds[name]
    try:
        if kind == "Path":
            return Path(value)
        if kind == "int":
            return int(value, 0) if isinstance(value, str) else int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return str(value).lower() in ("1", "true", "yes", "on")
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(p for p in value.replace(",", " ").split() if p)
            return tuple(str(p) for p in value)
        if kind == "bytes":
            return bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot use {value!r}: {exc}") from None
    return value


def load_config(
    file: Path | None, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> NodeConfig:
    """Defaults, then ``file`` (TOML), then ``env``, then ``overrides`` (non-None only)."""
    settings: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {file}: {exc}") from None
        for key, value in data.items():
            settings[key.replace("-", "_")] = _coerce(key.replace("-", "_"), value)
    for var, name in _ENV.items():
        if var in env:
            settings[name] = _coerce(name, env[var])
    for name, value in overrides.items():
        if value is not None:
            settings[name] = _coerce(name, value)
    return replace(NodeConfig(), **settings)


def resolve_genesis(config: NodeConfig) -> tuple[Transaction, NetworkParams]:
    """The genesis and network parameters a node with ``config`` runs.

    Raises:
        ConfigError: not ``--dev`` and no genesis file, an unusable file, or a
            configured network id that is not the file's.
    """
    if config.dev:
        params = NetworkParams(network_id=config.network_id, base_difficulty=config.base_difficulty)
        return dev_genesis(config.network_id), params
    if not config.genesis:
        raise ConfigError(
            "a network other than --dev needs --genesis FILE (tangle genesis writes one)"
        )
    spec = read_genesis_file(Path(config.genesis))
    if config.network_id not in (DEV_NETWORK_ID, spec.network_id):
        raise ConfigError(
            f"network id: the genesis file says {spec.network_id:#x}, "
            f"the configuration {config.network_id:#x}"
        )
    params = NetworkParams(network_id=spec.network_id, base_difficulty=spec.base_difficulty)
    return spec.genesis(), params


def environment() -> Mapping[str, str]:
    """The process environment (read here only, so the rest stays testable)."""
    return os.environ
