"""Adaptive difficulty per issuer and time estimates (PROTOCOL §6.3, §6.5)."""

from __future__ import annotations

import math

import pytest

import pow
from pow.adaptive import AdaptivePolicy, IssuerRates

ALICE, BOB = b"\x01" * 32, b"\x02" * 32


def test_allowance_costs_nothing_extra() -> None:  # §6.5
    rates = IssuerRates(AdaptivePolicy(window=10, free=3, bits_per_tx=1, max_extra=5))
    for t in range(3):
        assert rates.required(16, 300, ALICE, now=t) == 16
        rates.record(ALICE, now=t)
    assert rates.required(16, 300, ALICE, now=3) == 16  # 3 recent: still free
    rates.record(ALICE, now=3)
    assert rates.required(16, 300, ALICE, now=4) == 17  # 4 recent: one beyond
    assert rates.required(16, 300, BOB, now=4) == 16  # per issuer
    assert rates.required(16, 2000, ALICE, now=4) == 16 + 2 + 1  # size bits still apply


def test_extra_work_is_capped_and_expires() -> None:
    rates = IssuerRates(AdaptivePolicy(window=10, free=0, bits_per_tx=1, max_extra=4))
    for _ in range(50):
        rates.record(ALICE, now=100)
    assert rates.extra_bits(ALICE, now=100) == 4
    assert rates.extra_bits(ALICE, now=109.9) == 4
    assert rates.extra_bits(ALICE, now=110) == 0  # the window has passed


def test_fractional_rate() -> None:
    rates = IssuerRates(AdaptivePolicy(window=10, free=10, bits_per_tx=0.25, max_extra=12))
    for _ in range(17):
        rates.record(ALICE, now=0)
    assert rates.extra_bits(ALICE, now=1) == math.floor(0.25 * 7)


def test_memory_is_bounded() -> None:
    policy = AdaptivePolicy(free=2, bits_per_tx=0.5, max_extra=2, max_issuers=3)
    rates = IssuerRates(policy)
    for i in range(10):
        rates.record(bytes([i]) * 32, now=0)
    assert len(rates) == 3
    for _ in range(100):
        rates.record(ALICE, now=0)
    assert rates.recent(ALICE, now=0) == policy.history == 6


def test_policy_checks() -> None:
    with pytest.raises(ValueError, match="adaptive policy"):
        AdaptivePolicy(window=0)
    with pytest.raises(ValueError, match="max_issuers"):
        AdaptivePolicy(max_issuers=0)


def test_estimate_is_geometric() -> None:  # §6.3
    e = pow.estimate(16, hashes_per_second=6.5e6)
    assert e.mean_s == pytest.approx(65536 / 6.5e6)
    assert e.median_s == pytest.approx(math.log(2) * 65536 / 6.5e6, rel=1e-3)
    assert e.median_s < e.mean_s < e.p90_s < e.p99_s
    assert pow.estimate(0, 1e6).p99_s == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="hashes_per_second"):
        pow.estimate(10, 0)
