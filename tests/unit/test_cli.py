"""The tangle and tangle-wallet commands, including Ctrl-C on a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tangle import encode_address
from tangle.demo import scenario as demo
from tangle.node import cli
from tangle.node.errors import ConfigError
from tests.helpers import keypair
from wallet import cli as wallet_cli


def test_demo_scenario_conserves_supply_and_agrees_with_replica() -> None:
    lines: list[str] = []
    world = demo.run(lines.append, rounds=10, delay=0, sleep=lambda _: None, base_difficulty=4)
    t = world.tangle
    assert len(t) > 30
    assert any("double spend" in line for line in lines)
    assert any(not t.is_consistent(x.id) for x in t)
    assert t.tips() == world.replica.tips()
    assert all(t.verdict(x.id) == world.replica.verdict(x.id) for x in t)
    assert "agrees on every tip and verdict: True" in "\n".join(lines)


def test_tangle_demo_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["demo", "--in-process", "--rounds", "2", "--delay", "0", "--difficulty", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "round" in out
    assert "supply 1007000 conserved" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--rounds", "0"], "expected at least 1, got 0"),
        (["demo", "--rounds", "x"], "expected a whole number, got 'x'"),
        (["demo", "--delay", "-1"], "expected 0..60 seconds"),
        (["demo", "--difficulty", "40"], "expected 0..32 bits"),
        (["launch"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_stops_the_demo_cleanly() -> None:
    """A real `python -m tangle.node demo` process, interrupted the way a terminal does."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tangle.node",
            "demo",
            "--in-process",
            "--rounds",
            "1000",
            "--delay",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the first round to print
            line = proc.stdout.readline()
            if line.strip().startswith("1 "):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted: demo stopped cleanly" in out
    assert "Traceback" not in err


def test_wallet_check_address(capsys: pytest.CaptureFixture[str]) -> None:
    text = encode_address(keypair(3).address)
    assert wallet_cli.main(["--json", "check-address", text]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"valid": True, "address": text, "hex": keypair(3).address.hex()}
    typo = text[:-1] + ("q" if text[-1] != "q" else "p")
    assert wallet_cli.main(["check-address", typo]) == 2
    err = capsys.readouterr().err
    assert "invalid address" in err
    assert "checksum" in err
    assert "Traceback" not in err


def test_event_loop_choice(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.loop_factory("asyncio") is None
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert cli.loop_factory("auto") is None  # auto falls back to asyncio's loop
    with pytest.raises(ConfigError, match=r"uvloop is not installed \(pip install"):
        cli.loop_factory("uvloop")
    with pytest.raises(ConfigError, match=r"expected one of auto, uvloop, asyncio, got 'asycnio'"):
        cli.loop_factory("asycnio")  # a typo in TANGLE_EVENT_LOOP, which argparse lets by
    assert cli.main(["node", "--dev", "--event-loop", "uvloop"]) == 2
    assert "uvloop is not installed" in capsys.readouterr().err
