"""``make demo`` (``tangle-wallet demo``) end to end on a short devnet run: the charger is
paid per kWh, the sensor sells streams per KiB with refunds, the meter payment audits."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tangle.node.devnet import free_base_port
from tests.functional.framework import wait_until
from wallet import cli


def test_the_demo_pays_per_kwh_and_per_kib(capsys: pytest.CaptureFixture[str]) -> None:
    base = free_base_port(2)
    code = cli.main(["demo", "--nodes", "2", "--base-port", str(base), "--duration", "8"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = re.search(
        r"(\d+) of (\d+) transactions confirmed; (\d+) kWh paid at 25/kWh, (\d+) KiB bought "
        r"at 2/KiB in (\d+) streams \((\d+) refunded\)",
        out,
    )
    assert summary is not None, out
    confirmed, sent, kwh, kib, streams, refunded = map(int, summary.groups())
    assert sent > 5
    assert confirmed >= sent - 2  # the last payments may still be on their way
    assert kwh >= 3  # 300–1,200 Wh a second for 8 seconds
    assert streams >= 2
    assert kib == streams * 10  # 10 KiB per stream
    assert refunded == streams * 4  # a 12 KiB deposit, 10 KiB read: 2 KiB at 2 back
    assert "signed by the meter: OK" in out
    assert "devnet stopped (exit codes [0, 0])" in out


def test_demo_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--nodes", "0"]) == 2
    assert "--nodes: expected 1 to 16, got 0" in capsys.readouterr().err


def test_ctrl_c_stops_the_wallet_demo_and_its_nodes(tmp_path: Path) -> None:
    base = free_base_port(2)
    command = [sys.executable, "-m", "wallet", "demo", "--nodes", "2", "--base-port", str(base)]
    proc = subprocess.Popen(
        [*command, "--duration", "60", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: (tmp_path / "devnet.json").exists(), 60, "the devnet")
        time.sleep(4)  # payments and a stream under way
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert "devnet stopped (exit codes [0, 0])" in out
    for i in range(2):
        assert "stopped cleanly" in (tmp_path / f"node{i}" / "node.log").read_text()
