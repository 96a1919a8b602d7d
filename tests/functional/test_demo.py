"""``make demo`` (``tangle-wallet demo``) end to end on a short devnet run: the charger is
paid per kWh, the sensor sells streams per KiB with refunds, the meter payment audits."""

from __future__ import annotations

import re

import pytest

from tangle.devnet import free_base_port
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
