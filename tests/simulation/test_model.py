"""The simulator against the whitepaper's formulas, and the attack scenarios.

Uniform selection at lambda h = 10 (Popov §3): L0 = 2 lambda h tips, first approval
~ 2h, cumulative weight growing at lambda after adaptation, 2 approvers on average.
Sample sizes keep the statistical error to about 2%, and each run to a few seconds.
"""

from __future__ import annotations

import statistics

import pytest

from benchmarks.attacks import conflicting_pair, lazy_tips, parasite_chain
from benchmarks.simulate import Config, Simulation, simulate
from tangle.walk import DEFAULT_ALPHA


@pytest.fixture(scope="module")
def uniform() -> dict:  # type: ignore[type-arg]
    return simulate(Config(tip_selection="uniform", rate=10, delay=1, transactions=30_000, seed=5))


def test_mean_tips_is_two_lambda_h(uniform) -> None:  # type: ignore[no-untyped-def]
    assert uniform["mean_tips"] == pytest.approx(20, rel=0.05)


def test_first_approval_is_about_two_h(uniform) -> None:  # type: ignore[no-untyped-def]
    assert uniform["first_approval"]["mean"] == pytest.approx(2.0, rel=0.05)
    assert uniform["first_approval"]["median"] < uniform["first_approval"]["mean"]


def test_weight_grows_at_lambda_after_adaptation(uniform) -> None:  # type: ignore[no-untyped-def]
    assert uniform["cw_growth_slope"] == pytest.approx(10, rel=0.05)


def test_two_approvers_on_average_and_no_orphans(uniform) -> None:  # type: ignore[no-untyped-def]
    histogram = uniform["approvers_histogram"]
    total = sum(histogram.values())
    mean = sum(k * v for k, v in histogram.items()) / total
    assert mean == pytest.approx(2.0, rel=0.03)
    assert uniform["orphan_rate"] == 0


def test_mcmc_default_alpha_keeps_the_tangle_healthy() -> None:
    report = simulate(Config(tip_selection="mcmc", rate=50, delay=1, transactions=20_000, seed=2))
    assert report["config"]["alpha"] == DEFAULT_ALPHA
    assert report["orphan_rate"] < 0.001
    assert report["mean_tips"] < 1.3 * 100  # close to the 2 lambda h of uniform selection
    assert report["cw_growth_slope"] == pytest.approx(50, rel=0.05)


def test_urts_runs_the_same_model() -> None:
    report = simulate(Config(tip_selection="urts", rate=50, delay=1, transactions=15_000, seed=2))
    assert report["orphan_rate"] < 0.005
    assert report["cw_growth_slope"] == pytest.approx(50, rel=0.1)


def honest(transactions: int = 12_000, seed: int = 1) -> Simulation:
    sim = Simulation(Config(rate=50, delay=1, transactions=transactions, seed=seed))
    sim.run()
    return sim


def test_parasite_chain_wins_almost_no_walks() -> None:
    """Built in private off a transaction one depth old, at 30% of the honest rate."""
    shares = [parasite_chain(honest(seed=s), walks=500).share for s in range(3)]
    assert max(shares) < 0.01, shares


def test_lazy_tips_are_starved() -> None:
    """Semi-lazy tips (young enough to pass the max-depth rule) against their fair share."""
    results = [lazy_tips(honest(seed=s), walks=500) for s in range(3)]
    share = statistics.fmean(r.share for r in results)
    fair = statistics.fmean(r.fair_share for r in results)
    assert share < fair / 5, (share, fair)


def test_exactly_one_of_two_simultaneous_payments_is_confirmed() -> None:
    for seed in range(3):
        sim = Simulation(Config(rate=50, delay=1, transactions=12_000, seed=seed))
        while sim.x < 3_000:
            sim.step()
        outcome = conflicting_pair(sim, max_time=100)
        assert outcome.winner in ("a", "b"), outcome
        assert not outcome.both_confirmed
