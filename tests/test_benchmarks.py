"""The benchmarks run and write the JSON keys scripts rely on (figures are not judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import core
from benchmarks import pow as pow_bench


def test_pow_benchmark_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "pow.json"
    assert pow_bench.main(["--json", "--seconds", "0.3", "--solves", "3", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    for key in ("hashlib_loop_hps", "vectorized_hps", "ratio", "pool_hps", "verify_per_s"):
        assert printed[key] > 0, key
    assert set(printed["expected_ms"]) >= {"16", "20"}
    assert printed["ratio"] == pytest.approx(
        printed["vectorized_hps"] / printed["hashlib_loop_hps"], rel=1e-2
    )


def test_core_benchmark_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert core.main(["--json", "--transactions", "50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["transactions"] == 50
    assert printed["attach_prevalidated_per_s"] > 0


def test_loadgen_plan_is_a_valid_tangle() -> None:
    """Every prebuilt payment attaches consistently, in due order, to a reference tangle:
    the generator measures the network, not its own mistakes."""
    from benchmarks.loadgen import PARAMS, prebuild
    from tangle import Tangle
    from tangle.node.genesis import dev_genesis

    plan = prebuild(200.0, 2.0, devices=50, nodes=3)
    assert plan.count == 400
    assert [len(d.payments) for d in plan.devices] == [8] * 50
    assert {d.node for d in plan.devices} == {0, 1, 2}
    tangle = Tangle(dev_genesis(), PARAMS)
    for tx in [*plan.fundings, *plan.txs]:
        result = tangle.attach(tx)
        assert result.attached == (tx.id,), result
        assert tangle.is_consistent(tx.id), tangle.verdict(tx.id)
    dues = [p.due for d in plan.devices for p in d.payments]
    assert min(dues) == 0.0
    assert max(dues) < 2.0


@pytest.mark.slow
def test_throughput_quick_run_writes_the_capacity_keys(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A real devnet, a CI-sized run: the keys the issue asks for, with sane values."""
    from benchmarks import throughput

    out = tmp_path / "throughput.json"
    assert throughput.main(["--quick", "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    for key in (
        "capacity_tps",
        "overload_offered_tps",
        "overload_confirmed_tps",
        "overload_ratio",
        "overload_latency_ms",
        "overload_refused",
        "sig_verify_ceiling_tps",
        "ingest_tps_per_node",
        "ingest_vs_ceiling",
        "network_efficiency",
        "cores",
        "quiet_network",
        "goals",
    ):
        assert key in printed, key
    assert printed["cores"] >= 1
    assert printed["sig_verify_ceiling_tps"] > 0
    assert printed["overload_offered_tps"] == 2 * (printed["capacity_tps"] or 20.0)
    overload = printed["overload"]
    assert overload["attempted"] > 0
    assert overload["accepted_tps"] > 0
    assert set(overload["latency_ms"]) == {"p50", "p90", "p99"}
    assert printed["ingest_tps_per_node"] > 0
    assert printed["quiet_network"]["payments"] == 2


def test_attacks_benchmark_compares_with_and_without(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """One attack on real node processes: honest figures without and with it."""
    from benchmarks import attacks

    out = tmp_path / "attacks.json"
    argv = ["--only", "garbage", "--payments", "6", "--attack-seconds", "1", "--json"]
    assert attacks.main([*argv, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    result = printed["garbage"]
    assert result["baseline"]["sent"] == result["attacked"]["sent"] == 6
    assert result["baseline"]["confirmed_share"] == 1.0
    assert result["exit_code"] == 0
    assert result["attacker"]["frames"] > 0
    assert {"p99_ratio", "rss_growth_mb", "sigterm_s"} <= set(result)
