"""Shared fixtures: deterministic keys, a low-difficulty network, a genesis."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tangle import Keypair, NetworkParams, Tangle, Transaction, make_genesis
from tests.helpers import NETWORK_ID, keypair, output_of, transfer

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def params() -> NetworkParams:
    """A test network: real proof of work, but only 4 bits of it."""
    return NetworkParams(network_id=NETWORK_ID, base_difficulty=4)


@pytest.fixture
def alice() -> Keypair:
    return keypair(1)


@pytest.fixture
def bob() -> Keypair:
    return keypair(2)


@pytest.fixture
def carol() -> Keypair:
    return keypair(3)


@pytest.fixture
def genesis(alice: Keypair, bob: Keypair) -> Transaction:
    return make_genesis(NETWORK_ID, {alice.address: 1_000, bob.address: 500})


@pytest.fixture
def tangle(genesis: Transaction, params: NetworkParams) -> Tangle:
    return Tangle(genesis, params)


@pytest.fixture
def rivals(
    tangle: Tangle,
    genesis: Transaction,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
    params: NetworkParams,
) -> tuple[Transaction, Transaction]:
    """Two attached payments spending Alice's genesis output at the same moment: one to
    Bob, one to Carol. Each is consistent on its own (PROTOCOL §8.4)."""
    g = genesis.id
    source = output_of(genesis, alice.address)
    to_bob = transfer(alice, params, (g, g), [source], {bob.address: 1000})
    to_carol = transfer(alice, params, (g, g), [source], {carol.address: 1000}, timestamp=2)
    tangle.attach(to_bob)
    tangle.attach(to_carol)
    return to_bob, to_carol
