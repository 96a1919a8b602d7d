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
