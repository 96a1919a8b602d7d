"""``tangle devnet``: N wired nodes, devnet.json, Ctrl-C stops them all cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tangle.node.devnet import free_base_port
from tests.functional.framework import http, wait_until
from tests.helpers import keypair


def test_devnet_starts_wires_and_stops(tmp_path: Path) -> None:
    base = free_base_port(3)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tangle.node",
            "devnet",
            "--nodes",
            "3",
            "--base-port",
            str(base),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        described = tmp_path / "devnet.json"
        wait_until(described.exists, 60, "devnet.json")
        devnet = json.loads(described.read_text())
        apis = [n["api"] for n in devnet["nodes"]]
        assert apis == [f"http://127.0.0.1:{base + i}" for i in range(3)]
        assert devnet["network"].startswith("0x")
        from tangle import encode_address

        address = encode_address(keypair(31).address)
        for i, api in enumerate(apis):  # every node has its own faucet
            result = http("POST", api + "/api/v1/faucet", {"address": address, "amount": "7"})
            assert result.status == 201, (i, result.raw)

        def everywhere() -> bool:
            balances = [
                http("GET", f"{api}/api/v1/addresses/{address}").json["balance"]["confirmed"]
                for api in apis
            ]
            return balances == ["21", "21", "21"]

        try:
            wait_until(everywhere, 60, "the three payments confirmed on every node")
        except AssertionError:
            for i, api in enumerate(apis):  # what each node saw, for the failure report
                print(f"--- node{i}: {http('GET', f'{api}/api/v1/addresses/{address}').raw!r}")
                print((tmp_path / f"node{i}" / "node.log").read_text()[-3000:])
            raise
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # closes the pipes: no ResourceWarning in a later test
    assert proc.returncode == 0, err
    assert "stopped (exit codes [0, 0, 0])" in out
    for i in range(3):
        assert "stopped cleanly" in (tmp_path / f"node{i}" / "node.log").read_text()
