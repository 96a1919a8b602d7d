"""``tangle-wallet`` end to end against real nodes, called in-process through ``main``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tangle import encode_address
from tests.functional.framework import NodeProcess, wait_until
from wallet import cli
from wallet.client import NodeClient
from wallet.errors import NodeUnreachable
from wallet.keys import derive_keypair
from wallet.payments import Payer

pytestmark = pytest.mark.functional
DEVICE_SEED = bytes(range(100, 132))
SINK = encode_address(derive_keypair(DEVICE_SEED, 99).address)


class Cli:
    """``tangle-wallet`` against one wallet folder; each call returns (code, out, err)."""

    def __init__(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.directory = directory
        self.capsys = capsys

    def __call__(self, node: NodeProcess, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(["--wallet-dir", str(self.directory), "--node", node.api, *args])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, node: NodeProcess, *args: str) -> Any:
        code, out, err = self(node, "--json", *args)
        assert code == 0, (out, err)
        return json.loads(out)


@pytest.fixture
def wallet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "pass phrase")
    monkeypatch.setenv("TANGLE_WALLET_KDF", "minimum")
    return Cli(tmp_path / "wallet", capsys)


COUNTING = ("node0", "--tip-wait", "600")
"""A node that does not approve payments of its own accord within seconds, for tests that
count the transactions a wallet command made (the idle-time consolidation remains)."""


def transactions(node: NodeProcess) -> int:
    count: int = node.get("/api/v1/info").json["transactions"]
    return count


def balance(node: NodeProcess, address: str) -> tuple[int, int]:
    body = node.get(f"/api/v1/addresses/{address}").json["balance"]
    return int(body["confirmed"]), int(body["pending"])


def test_send_on_a_devnet(
    spawn: Callable[..., NodeProcess],
    wallet: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """init, faucet, send --wait, the balance on every node, history; retries with the
    same key pay once; insufficient funds and typos issue nothing."""
    n0 = spawn("n0")
    n1 = spawn("n1", "--peer", n0.api, "--faucet-index", "1")
    backup = tmp_path / "backup.txt"
    created = wallet.json(n0, "init", "--backup", str(backup))
    primary = created["address"]
    assert "backup" not in created  # the line went to the file only
    assert backup.read_text().startswith("tgl-seed:")
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    wallet.json(n0, "faucet", "1000")
    payee = encode_address(derive_keypair(DEVICE_SEED, 0).address)

    code, out, err = wallet(n0, "send", payee, "300", "--idempotency-key", "order-1", "--wait")
    assert code == 0, err
    assert "(confirmed)" in out
    assert "confirmed" in err  # the progress lines
    for node in (n0, n1):
        wait_until(lambda node=node: balance(node, payee) == (300, 300), 20, "seen everywhere")
        wait_until(lambda node=node: balance(node, primary)[1] == 700, 20, "change everywhere")
    listed = wallet.json(n1, "balance")  # through the other node
    assert listed["total"]["pending"] == 700

    # The same key again, e.g. a retry after a timeout: nothing new is issued.
    before = transactions(n0)
    again = wallet.json(n0, "send", payee, "300", "--idempotency-key", "order-1")
    assert again["already_sent"] is True
    assert transactions(n0) == before
    code, _, err = wallet(n0, "send", payee, "301", "--idempotency-key", "order-1")
    assert code == 2
    assert "already names a payment of 300" in err

    code, _, err = wallet(n0, "send", payee, "5000")
    assert code == 5
    assert "has 700 available, the payment needs 5000" in err
    code, out, _ = wallet(n0, "--json", "send", payee, "5000")
    assert json.loads(out)["error"]["needed"] == 5000
    typo = payee[:-1] + ("q" if payee[-1] != "q" else "p")
    code, _, err = wallet(n0, "send", typo, "5")
    assert code == 2
    assert err.startswith("tangle-wallet: invalid address:")
    assert "checksum" in err
    assert "Traceback" not in err
    assert transactions(n0) == before

    # a payment request URI stands for ADDRESS AMOUNT
    request = wallet.json(n0, "request", payee, "--amount", "25")
    paid = wallet.json(n0, "send", request["uri"])
    assert paid["payments"][0] == {"to": payee, "amount": 25, "key": None, "device": None}

    history = wallet.json(n0, "history")
    assert [(h["kind"], h["payments"][0]["amount"]) for h in history] == [
        ("send", 25),
        ("send", 300),
    ]
    assert history[1]["status"] == "confirmed"
    assert history[1]["payments"][0]["key"] == "order-1"
    status = wallet.json(n1, "status", history[1]["tx_id"])
    assert status["metadata"]["status"] == "confirmed"

    # wrong password and unreachable node: said plainly
    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "not it")
    code, _, err = wallet(n0, "send", payee, "1")
    assert code == 7
    assert "wrong password for keystore" in err
    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "pass phrase")
    code = cli.main(
        ["--wallet-dir", str(wallet.directory), "--node", "http://127.0.0.1:9", "balance"]
    )
    assert code == 3

    # the backup restores the same addresses, the used ones found on the node by --scan
    second = wallet.json(n0, "address", "--new")["address"]
    wallet.json(n0, "faucet", "5", "--index", "1")
    restored = Cli(tmp_path / "restored", wallet.capsys)
    got = restored.json(n0, "restore", "--from-file", str(backup), "--scan")
    assert got["addresses"] == [primary, second]
    assert restored.json(n0, "balance")["total"]["pending"] == 700 - 25 + 5


def test_split_funds_and_consolidate(spawn: Callable[..., NodeProcess], wallet: Cli) -> None:
    node = spawn(*COUNTING)
    wallet.json(node, "init")
    second = wallet.json(node, "address", "--new", "--label", "spare")
    wallet.json(node, "faucet", "400")
    wallet.json(node, "faucet", "300", "--index", "1")
    payee = encode_address(derive_keypair(DEVICE_SEED, 0).address)
    before = transactions(node)
    code, _, err = wallet(node, "send", payee, "600")
    assert code == 5
    assert "no single address holds 600" in err
    assert "consolidate" in err
    assert transactions(node) == before
    swept = wallet.json(node, "consolidate", "--wait")
    assert [s["from_index"] for s in swept] == [1]
    assert balance(node, second["address"]) == (0, 0)
    assert wallet.json(node, "send", payee, "600")["payments"][0]["amount"] == 600


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_fleet_file(spawn: Callable[..., NodeProcess], wallet: Cli, tmp_path: Path) -> None:
    """A bad row pays nothing; a good file pays every row in one transaction; running it
    again pays no row twice."""
    node = spawn(*COUNTING)
    wallet.json(node, "init")
    wallet.json(node, "faucet", "10000")
    devices = [encode_address(derive_keypair(DEVICE_SEED, i).address) for i in range(4)]
    for i, address in enumerate(devices[:3]):
        wallet.json(node, "fleet", "add", f"meter-{i}", address)
    before = transactions(node)

    bad = write(tmp_path / "bad.csv", f"meter-0,100\nmeter-1,1O0\nmeter-9,5\n{devices[3]},7\n")
    code, _, err = wallet(node, "topup", "--file", str(bad))
    assert code == 2
    assert "2 bad rows, nothing was paid" in err
    assert "line 2: amount '1O0' is not a whole number" in err
    assert "line 3: 'meter-9': not a fleet device" in err
    assert transactions(node) == before

    good = write(
        tmp_path / "fleet.csv",
        f"name_or_address,amount,idempotency_key\nmeter-0,100\nmeter-1,200,m1-week-1\n"
        f"meter-2,300\n{devices[3]},7\n",
    )
    paid = wallet.json(node, "topup", "--file", str(good))
    assert len(paid) == 1  # one transaction
    assert [p["amount"] for p in paid[0]["payments"]] == [100, 200, 300, 7]
    assert transactions(node) == before + 1
    for address, amount in zip(devices, (100, 200, 300, 7), strict=True):
        assert balance(node, address)[1] == amount

    again = wallet.json(node, "topup", "--file", str(good))
    assert [a["already_sent"] for a in again] == [True]
    assert transactions(node) == before + 1
    listed = wallet.json(node, "fleet", "list")
    assert [d["pending"] for d in listed] == [100, 200, 300]

    # a row added to the file: only that row is paid
    extra = encode_address(derive_keypair(DEVICE_SEED, 4).address)
    write(good, good.read_text() + f"{extra},50\n")
    paid = wallet.json(node, "topup", "--file", str(good))
    assert transactions(node) == before + 2
    assert [[p["amount"] for p in b["payments"]] for b in paid if not b["already_sent"]] == [[50]]
    # a new round takes a new tag: every row without its own key is paid again, in one
    # transaction; the row keyed m1-week-1 stays paid
    paid = wallet.json(node, "topup", "--file", str(good), "--batch-key", "week-2")
    assert [(len(b["payments"]), b["already_sent"]) for b in paid] == [(4, True), (4, False)]
    assert transactions(node) == before + 3
    assert balance(node, devices[0])[1] == 200


async def drain(node: NodeProcess, index: int, amount: int) -> None:
    """The device spends ``amount`` (to a sink), as a meter would."""
    async with NodeClient(node.api) as client:
        await Payer(client, derive_keypair(DEVICE_SEED, index)).pay(
            {derive_keypair(DEVICE_SEED, 99).address: amount}
        )


def test_autotopup_once_keeps_the_minimum_within_the_cap(
    spawn: Callable[..., NodeProcess], wallet: Cli
) -> None:
    node = spawn(*COUNTING)
    wallet.json(node, "init")
    wallet.json(node, "faucet", "10000")
    meter = encode_address(derive_keypair(DEVICE_SEED, 0).address)
    wallet.json(node, "fleet", "add", "meter", meter)
    wallet.json(
        node, "policy", "set", "meter", "--min", "100", "--target", "300", "--daily-cap", "500"
    )

    first = wallet.json(node, "autotopup", "--once")
    assert first == [{"device": "meter", "balance": 0, "paid": 300, "cap_left": 500}]
    assert balance(node, meter)[1] == 300
    assert wallet.json(node, "autotopup", "--once") == []  # above its minimum: nothing

    asyncio.run(drain(node, 0, 250))
    second = wallet.json(node, "autotopup", "--once")
    assert second == [{"device": "meter", "balance": 50, "paid": 200, "cap_left": 200}]
    assert balance(node, meter)[1] == 250  # the cap (500 a day) allowed 200 of the 250

    asyncio.run(drain(node, 0, 200))
    before = transactions(node)
    code, out, err = wallet(node, "--json", "autotopup", "--once")
    assert code == 0
    assert json.loads(out) == [{"device": "meter", "balance": 50, "paid": 0, "cap_left": 0}]
    assert "today's cap is used up" in err
    assert transactions(node) == before


def test_autotopup_daemon_follows_the_event_stream(
    spawn: Callable[..., NodeProcess], wallet: Cli
) -> None:
    node = spawn()
    wallet.json(node, "init")
    wallet.json(node, "faucet", "10000")
    meter = encode_address(derive_keypair(DEVICE_SEED, 1).address)
    wallet.json(node, "fleet", "add", "meter", meter)
    wallet.json(node, "policy", "set", "meter", "--min", "100", "--target", "400")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wallet",
            "--wallet-dir",
            str(wallet.directory),
            "--node",
            node.api,
            "autotopup",
            "--interval",
            "60",  # long: the top-ups below come from the event stream
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(lambda: balance(node, meter)[1] == 400, 30, "the first top-up")
        wait_until(lambda: balance(node, meter)[0] == 400, 30, "the top-up to confirm")
        asyncio.run(drain(node, 1, 350))
        wait_until(lambda: balance(node, meter)[1] == 400, 30, "a top-up after the drain")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            print("--- autotopup stderr ---\n" + proc.communicate()[1])
    assert proc.returncode == 0, err
    assert "topped up meter: balance 0, paid 400" in err
    assert "topped up meter: balance 50, paid 350" in err
    assert "autotopup: stopped after" in err


def test_a_retry_after_a_crash_resends_the_recorded_transaction(
    spawn: Callable[..., NodeProcess], wallet: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction is recorded before it is submitted: when the submission is lost
    (the process died, the network dropped), the retry sends that very transaction."""
    node = spawn(*COUNTING)
    wallet.json(node, "init")
    wallet.json(node, "faucet", "1000")
    payee = encode_address(derive_keypair(DEVICE_SEED, 0).address)
    real_submit = NodeClient.submit

    async def lost(self: NodeClient, tx: Any) -> bool:
        raise NodeUnreachable(self.url, "connection reset (simulated)")

    monkeypatch.setattr(NodeClient, "submit", lost)
    before = transactions(node)
    code, _, err = wallet(node, "send", payee, "400", "--idempotency-key", "invoice-9")
    assert code == 3
    assert "connection reset" in err
    assert transactions(node) == before
    recorded = wallet.json(node, "history")[0]
    assert recorded["status"] == "submitted"
    assert recorded["tx_id"] is not None

    monkeypatch.setattr(NodeClient, "submit", real_submit)
    retried = wallet.json(node, "send", payee, "400", "--idempotency-key", "invoice-9")
    assert retried["already_sent"] is True
    assert retried["tx_id"] == recorded["tx_id"]  # the same transaction, not a new one
    assert transactions(node) == before + 1
    assert balance(node, payee)[1] == 400
    wallet.json(node, "send", payee, "400", "--idempotency-key", "invoice-9")
    assert transactions(node) == before + 1
    assert balance(node, payee)[1] == 400


def test_a_large_fleet_file_is_chunked(
    spawn: Callable[..., NodeProcess], wallet: Cli, tmp_path: Path
) -> None:
    """130 rows: 126 recipients in one transaction (one output left for the change), 4 in
    a second; the state file lost is rebuilt from the keystore's primary address."""
    node = spawn(*COUNTING)
    wallet.json(node, "init")
    wallet.json(node, "faucet", "100000")
    addresses = [encode_address(derive_keypair(DEVICE_SEED, 200 + i).address) for i in range(130)]
    big = write(tmp_path / "big.csv", "".join(f"{a},{i + 1}\n" for i, a in enumerate(addresses)))
    before = transactions(node)
    paid = wallet.json(node, "topup", "--file", str(big))
    assert [len(b["payments"]) for b in paid] == [126, 4]
    assert transactions(node) == before + 2
    assert balance(node, addresses[-1])[1] == 130
    assert wallet.json(node, "topup", "--file", str(big))[0]["already_sent"] is True
    assert transactions(node) == before + 2
    (wallet.directory / "wallet.db").unlink()
    assert wallet.json(node, "balance")["total"]["pending"] == 100000 - sum(range(1, 131))


def test_pay_meter_from_the_wallet(
    spawn: Callable[..., NodeProcess], wallet: Cli, tmp_path: Path
) -> None:
    """``pay-meter`` pays from the wallet's primary address when no key file is given."""
    node = spawn()
    wallet.json(node, "init")
    wallet.json(node, "faucet", "100")
    readings = tmp_path / "meter.txt"
    readings.write_text("1000\n2500\n3100\n")
    code, out, err = wallet(
        node, "pay-meter", "--to", SINK, "--price-per-kwh", "7", "--source", str(readings)
    )
    assert code == 0, err
    assert "paid 7 for 1 kWh" in out  # 1000 → 2500: 1 kWh, 500 Wh carried
    assert "paid 7 for 1 kWh" in out.splitlines()[1]  # → 3100: 1 more kWh, 100 Wh carried
    assert "100 Wh carried" in out
    assert balance(node, SINK)[1] == 14
