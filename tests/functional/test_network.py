"""A network other than the dev one: ``tangle genesis`` writes its genesis file, nodes
started with ``--genesis`` (no ``--dev``) agree on it, pay, refuse a faucet, and refuse
a data dir or a file of another network."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tangle import NetworkParams, OutputId, TxId, build, encode_address
from tangle.node import cli as tangle_cli
from tangle.schema import Status
from tests.functional.framework import NodeProcess, submit, wait_until
from tests.helpers import keypair

NETWORK = 0x6D61_696E_7465_7374  # "maintest"
ALICE, BOB = keypair(61), keypair(62)


def write_genesis(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = tangle_cli.main(
        [
            "genesis",
            "--network-id",
            f"{NETWORK:#x}",
            "--base-difficulty",
            "12",
            "--alloc",
            f"{encode_address(ALICE.address)}=1000000",
            "--alloc",
            f"{encode_address(BOB.address)}=5",
            "--out",
            str(path),
        ]
    )
    assert code == 0
    return capsys.readouterr().out


def test_a_network_from_a_genesis_file(
    spawn: Callable[..., NodeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genesis_file = tmp_path / "genesis.json"
    said = write_genesis(genesis_file, capsys)
    spec = json.loads(genesis_file.read_text())
    assert spec["genesis_id"] in said
    assert spec["base_difficulty"] == 12

    first = spawn("a", "--genesis", str(genesis_file), dev=False)
    second = spawn("b", "--genesis", str(genesis_file), "--peer", first.api, dev=False)
    info = first.get("/api/v1/info").json
    assert (info["dev"], info["network_id"], info["faucet"]) == (False, f"{NETWORK:#x}", None)
    assert info["pow"]["base_difficulty"] == 12
    refused = first.post("/api/v1/faucet", {"address": encode_address(BOB.address), "amount": "1"})
    assert refused.status == 404
    assert "only on --dev networks" in refused.json["error"]["message"]

    params = NetworkParams(network_id=NETWORK, base_difficulty=12)
    genesis_id = TxId(bytes.fromhex(spec["genesis_id"]))
    alice_coin = next(
        OutputId.from_hex(o["output_id"])
        for o in first.get(f"/api/v1/addresses/{encode_address(ALICE.address)}").json["outputs"]
    )
    pay = build(
        ALICE,
        params,
        trunk=genesis_id,
        branch=genesis_id,
        timestamp=int(time.time() * 1000),
        inputs=[alice_coin],
        payments={BOB.address: 250, ALICE.address: 999_750},
    )
    assert submit(first, pay).status == 201
    wait_until(lambda: second.status(pay.id) == Status.CONFIRMED, 30, "the payment on the peer")
    bob = second.get(f"/api/v1/addresses/{encode_address(BOB.address)}").json["balance"]
    assert bob["confirmed"] == "255"


def test_bad_network_setups_are_refused(
    spawn: Callable[..., NodeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(AssertionError, match="needs --genesis FILE"):
        spawn("nogenesis", dev=False)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"network_id": "0x1", "allocations": [{"address": "tgl1x"}]}))
    with pytest.raises(AssertionError, match=r"genesis file .*broken\.json"):
        spawn("broken", "--genesis", str(broken), dev=False)
    genesis_file = tmp_path / "genesis.json"
    write_genesis(genesis_file, capsys)
    dev = spawn("shared")  # a dev node's data dir...
    dev.stop()
    with pytest.raises(AssertionError, match="holds network id"):  # ...is not this network's
        spawn("shared", "--genesis", str(genesis_file), dev=False)
    assert tangle_cli.main(["genesis", "--network-id", "7", "--alloc", "nope", "--out", "x"]) == 2
    assert "expected ADDRESS=AMOUNT" in capsys.readouterr().err
