"""The wallet's payment logic against a scripted node: --wait promotes and reattaches
under the same key; the CLI's password prompt (no real node here)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tangle.address import encode_address
from tangle.schema import Status
from tangle.transaction import OutputId, Transaction, TxId, decode
from tangle.validation import NetworkParams
from wallet import cli
from wallet.autotopup import watch_events
from wallet.cli import setup as cli_setup
from wallet.cli.meter import _pay
from wallet.client import AddressInfo, NodeClient, OutputInfo
from wallet.errors import InsufficientFunds, MalformedAnswer, NodeError, SendFailed, UsageError
from wallet.keys import derive_keypair
from wallet.keystore import KDF_PRESETS, save_keystore
from wallet.ops import RecordingClient, Wallet
from wallet.payments import Payer
from wallet.state import PaymentRow, WalletState

SEED = bytes(range(32))
ME = derive_keypair(SEED, 0)
PAYEE_ADDRESS = derive_keypair(SEED, 5).address
PAYEE = encode_address(PAYEE_ADDRESS)
FUNDING = TxId(bytes([7]) * 32)


class ScriptedNode(RecordingClient):
    """Answers like a node: one coin of 1000 at the wallet's address; each transaction's
    status comes from ``script`` (a list per submission order), then ``confirmed``."""

    def __init__(self, script: list[list[dict[str, Any]]]) -> None:
        super().__init__("http://scripted")
        self.script = script
        self.submitted: list[Transaction] = []
        self.answers: dict[TxId, list[dict[str, Any]]] = {}

    async def params(self) -> NetworkParams:
        return NetworkParams(network_id=1, base_difficulty=1)

    async def tips(self, approve: Any = ()) -> tuple[TxId, TxId]:
        return FUNDING, FUNDING

    async def address(self, address: Any) -> AddressInfo:
        coin = OutputInfo(OutputId(FUNDING, 0), address, 1000, Status.CONFIRMED, False, None, False)
        return AddressInfo(address, 1000, 1000, (coin,))

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        assert (method, path) == ("POST", "/api/v1/transactions")
        tx = decode(bytes.fromhex(kw["json"]["raw"]))
        self.submitted.append(tx)
        self.answers[tx.id] = self.script.pop(0) if self.script else []
        return 201, {}

    async def transaction(self, tx_id: TxId) -> dict[str, Any]:
        left = self.answers[tx_id]
        meta = left.pop(0) if len(left) > 1 else (left[0] if left else {"status": "confirmed"})
        advice = {"should_promote": False, "should_reattach": False, "conflict_reason": None}
        return {"metadata": {"confidence": 0.0, "cumulative_weight": 1, **advice, **meta}}

    async def statuses(self, ids: Any) -> dict[TxId, str | None]:
        return {i: "pending" if i in self.answers else None for i in ids}


def make_wallet(tmp_path: Path, node: ScriptedNode) -> Wallet:
    save_keystore(tmp_path / "keystore.json", SEED, "pw", KDF_PRESETS["minimum"])
    state = WalletState(tmp_path / "wallet.db")
    state.add_address(0, encode_address(ME.address), "primary")
    state.close()
    wallet = Wallet(tmp_path, "http://scripted", lambda: "pw")
    wallet._client = node
    return wallet


async def test_wait_promotes_then_reattaches_under_the_same_key(tmp_path: Path) -> None:
    pending = {"status": "pending", "should_promote": False, "should_reattach": False}
    node = ScriptedNode(
        [
            [pending, {**pending, "should_promote": True}, {"status": "orphaned"}],
            [],  # the promotion
            [pending, {"status": "confirmed"}],  # the reattachment
        ]
    )
    wallet = make_wallet(tmp_path, node)
    try:
        (outcome,) = await wallet.pay_rows("send", [PaymentRow("k-1", PAYEE, 300)])
        first = outcome.batch.tx_id
        seen: list[str] = []
        status = await wallet.wait(outcome.batch.id, 10, lambda _t, m: seen.append(m["status"]), 0)
        assert status == "confirmed"
        original, promotion, reattached = node.submitted
        assert first == original.id.hex()
        assert promotion.inputs == ()
        assert reattached.inputs == original.inputs  # the same coins: only one can confirm
        assert reattached.outputs == original.outputs
        assert reattached.id != original.id
        batch = wallet.state.batch(outcome.batch.id)
        assert batch.tx_id == reattached.id.hex()
        assert batch.status == "confirmed"
        assert batch.tx_ids == (original.id.hex(), reattached.id.hex())
        assert batch.promotions == (promotion.id.hex(),)
        found = wallet.state.payment_by_key("k-1")
        assert found is not None
        assert found[1] == outcome.batch.id
        assert seen == ["pending", "pending", "orphaned", "pending", "confirmed"]
        # the same key again: reported, nothing submitted
        (again,) = await wallet.pay_rows("send", [PaymentRow("k-1", PAYEE, 300)])
        assert again.reused
        assert len(node.submitted) == 3
    finally:
        await wallet.close()


def test_init_asks_for_the_password_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TANGLE_WALLET_PASSWORD", raising=False)
    answers = iter(["one", "two"])
    monkeypatch.setattr(getpass, "getpass", lambda _prompt: next(answers))
    directory = tmp_path / "w"
    code = cli.main(["--wallet-dir", str(directory), "init", "--kdf", "minimum"])
    assert code == 2
    assert "the two passwords differ; nothing was written" in capsys.readouterr().err
    assert not (directory / "keystore.json").exists()

    answers = iter(["same", "same", "wrong"])
    assert cli.main(["--wallet-dir", str(directory), "init", "--kdf", "minimum"]) == 0
    out = capsys.readouterr().out
    assert out.count("tgl-seed:") == 1  # the backup line, once
    code = cli.main(["--wallet-dir", str(directory), "address", "--new"])
    assert code == 7
    assert "wrong password for keystore" in capsys.readouterr().err
    code = cli.main(["--wallet-dir", str(directory), "init", "--kdf", "minimum"])
    assert code == 2
    assert "a wallet exists already" in capsys.readouterr().err


async def test_the_event_watcher_reconnects_with_since() -> None:
    """A dropped stream is reopened with since=<last seq seen>; every event wakes a pass."""
    queries: list[dict[str, str]] = []
    reconnected = asyncio.Event()

    async def events(request: web.Request) -> web.WebSocketResponse:
        queries.append(dict(request.query))
        if len(queries) == 2:
            reconnected.set()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seq = 5 if len(queries) == 1 else 6
        await ws.send_bytes(json.dumps({"seq": seq, "topic": "address:x", "data": {}}).encode())
        if len(queries) == 1:
            await ws.close()  # the node went away
        else:
            await ws.receive()  # until the watcher stops
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    wake = asyncio.Event()
    logged: list[str] = []
    watcher = asyncio.create_task(
        watch_events(f"http://127.0.0.1:{port}", ["address:x"], wake, logged.append)
    )
    try:
        async with asyncio.timeout(10):
            await reconnected.wait()
            await wake.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await runner.cleanup()
    assert queries[0] == {"topics": "address:x"}
    assert queries[1] == {"topics": "address:x", "since": "5"}


def _init(directory: Path, *args: str) -> int:
    return cli.main(["--wallet-dir", str(directory), "init", "--kdf", "minimum", *args])


@pytest.mark.parametrize("problem", ["exists", "unwritable"])
def test_init_with_a_bad_backup_file_creates_no_wallet(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    """The backup file is made first: when it cannot be, no wallet exists whose backup line
    was never shown, and init can simply be run again."""
    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "pw")
    directory = tmp_path / "w"
    if problem == "exists":
        bad = tmp_path / "backup.txt"
        bad.write_text("something else\n")
    else:
        (tmp_path / "plain-file").write_text("")
        bad = tmp_path / "plain-file" / "backup.txt"  # its folder is a file
    assert _init(directory, "--backup", str(bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert not (directory / "keystore.json").exists()
    assert not (directory / "wallet.db").exists()
    if problem == "exists":
        assert bad.read_text() == "something else\n"
    good = tmp_path / "good.txt"
    assert _init(directory, "--backup", str(good)) == 0
    assert good.read_text().startswith("tgl-seed:")
    assert oct(good.stat().st_mode & 0o777) == "0o600"
    assert (directory / "keystore.json").exists()


def test_init_failing_after_the_keystore_removes_it_and_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "pw")
    directory = tmp_path / "w"
    backup = tmp_path / "backup.txt"

    def broken(path: Path) -> WalletState:
        assert (directory / "keystore.json").exists()  # it fails after the keystore
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_setup, "WalletState", broken)
    assert _init(directory, "--backup", str(backup)) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not (directory / "keystore.json").exists()
    assert not backup.exists()  # it restored a wallet that was never made
    monkeypatch.undo()
    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "pw")
    assert _init(directory, "--backup", str(backup)) == 0
    assert backup.read_text().startswith("tgl-seed:")


Refusal = tuple[int, str, str, dict[str, Any]]
"""What a node answers a spend of a spent output: status, code, message, extra fields."""


class CoinNode(NodeClient):
    """A node with the given coins at every address; it remembers what submissions spent
    and refuses (``refusal``) a spend of an output spent before, like a node that knows
    pending spends."""

    def __init__(self, coins: list[int], refusal: Refusal | None = None) -> None:
        super().__init__("http://scripted")
        self.coins = {OutputId(FUNDING, i): amount for i, amount in enumerate(coins)}
        self.spent: dict[OutputId, TxId] = {}
        self.submitted: list[Transaction] = []
        self.refused: list[Transaction] = []
        self.refusal = refusal or (409, "double_spend", "an input is already spent", {})

    async def params(self) -> NetworkParams:
        return NetworkParams(network_id=1, base_difficulty=1)

    async def tips(self, approve: Any = ()) -> tuple[TxId, TxId]:
        await asyncio.sleep(0)  # another payment may run meanwhile
        return FUNDING, FUNDING

    async def address(self, address: Any) -> AddressInfo:
        await asyncio.sleep(0)
        outputs = tuple(
            OutputInfo(oid, address, amount, Status.CONFIRMED, oid in self.spent, None, False)
            for oid, amount in self.coins.items()
        )
        return AddressInfo(address, 0, 0, outputs)

    async def output(self, output_id: OutputId) -> OutputInfo:
        await asyncio.sleep(0)
        spender = self.spent.get(output_id)
        amount = self.coins.get(output_id, 0)
        return OutputInfo(
            output_id, ME.address, amount, Status.CONFIRMED, spender is not None, spender, False
        )

    async def submit(self, tx: Transaction) -> bool:
        await asyncio.sleep(0)
        if any(oid in self.spent for oid in tx.inputs):
            self.refused.append(tx)
            status, code, message, extra = self.refusal
            raise NodeError(status, code, message, extra)
        self.spent.update(dict.fromkeys(tx.inputs, tx.id))
        self.submitted.append(tx)
        return True


async def test_concurrent_payments_of_one_payer_spend_distinct_coins() -> None:
    node = CoinNode([500, 500, 500])
    payer = Payer(node, ME)
    try:
        first, second = await asyncio.gather(
            payer.pay({PAYEE_ADDRESS: 100}), payer.pay({PAYEE_ADDRESS: 200})
        )
    finally:
        payer.solver.close()
    assert not node.refused
    assert set(first.inputs).isdisjoint(second.inputs)


async def test_concurrent_payments_from_one_coin_one_fails_clearly() -> None:
    node = CoinNode([1000])
    payer = Payer(node, ME)
    try:
        results = await asyncio.gather(
            payer.pay({PAYEE_ADDRESS: 600}),
            payer.pay({PAYEE_ADDRESS: 600}),
            return_exceptions=True,
        )
    finally:
        payer.solver.close()
    paid = [r for r in results if isinstance(r, Transaction)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(paid) == 1
    assert len(failed) == 1
    assert isinstance(failed[0], InsufficientFunds)
    assert "has 400 available, the payment needs 600" in str(failed[0])
    assert len(node.submitted) == 1


BORN_CONFLICTING = "DOUBLE_SPEND: output 07…:0 is spent by 08… (PROTOCOL §8.3)"


@pytest.mark.parametrize(
    "refusal",
    [
        (409, "double_spend", "an input is already spent by a pending transaction", {}),
        (422, "conflicting", BORN_CONFLICTING, {"conflict_reason": "double_spend"}),
    ],
)
async def test_a_double_spend_refusal_marks_the_coin_spent_and_chooses_again(
    refusal: Refusal,
) -> None:
    """Another payer (another process, the same key) spent the largest coin; our node
    index does not show it yet. The refusal makes the payer choose the next coin. The
    payer decides from the error's fields (code, conflict_reason), never from its
    message."""
    node = CoinNode([700, 500], refusal)
    rival = next(iter(node.coins))
    node.spent[rival] = TxId(bytes(32))
    payer = Payer(node, ME)
    payer.made[rival] = 700  # what the stale view still offers
    node.coins.pop(rival)
    try:
        tx = await payer.pay({PAYEE_ADDRESS: 300})
    finally:
        payer.solver.close()
    assert rival in node.refused[0].inputs
    assert rival not in tx.inputs
    assert tx.inputs == (OutputId(FUNDING, 1),)
    assert rival in payer.spent


async def test_double_spend_refusals_give_up_after_a_few_selections() -> None:
    node = CoinNode([])
    payer = Payer(node, ME)
    stale = {OutputId(FUNDING, i): 100 for i in range(10)}
    node.spent.update(dict.fromkeys(stale, TxId(bytes(32))))
    try:
        payer.made.update(list(stale.items())[:2])  # a stale view: two coins look free
        with pytest.raises(InsufficientFunds, match="has 0 available"):
            await payer.pay({PAYEE_ADDRESS: 100})
        assert len(node.refused) == 2
        payer.made.update(list(stale.items())[2:])  # eight more
        with pytest.raises(SendFailed, match="spent already 4 times"):
            await payer.pay({PAYEE_ADDRESS: 100})
        assert len(node.refused) == 6
    finally:
        payer.solver.close()
    assert len(node.submitted) == 0


async def test_repr_of_a_wallet_shows_no_seed(tmp_path: Path) -> None:
    secret = "the password"
    wallet = Wallet(tmp_path, "http://scripted", lambda: secret)
    wallet._seed = SEED
    wallet.payer(0)  # a keypair derived from the seed, held by the wallet
    try:
        text = repr(wallet)
        for shown in (SEED.hex(), repr(SEED), str(list(SEED)), "lambda", "_seed"):
            assert shown not in text
        assert "http://scripted" in text  # still a useful repr
    finally:
        await wallet.close()


def test_fleet_add_refuses_an_address_already_in_the_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_keystore(tmp_path / "keystore.json", SEED, "pw", KDF_PRESETS["minimum"])
    other = encode_address(derive_keypair(SEED, 6).address)

    def fleet(*args: str) -> int:
        return cli.main(["--wallet-dir", str(tmp_path), "fleet", *args])

    assert fleet("add", "meter-1", PAYEE) == 0
    capsys.readouterr()
    assert fleet("add", "meter-2", PAYEE) == 2
    assert f"{PAYEE} is already in the fleet as 'meter-1'" in capsys.readouterr().err
    assert fleet("add", "meter-1", PAYEE) == 0  # the same again: nothing changes
    assert fleet("add", "meter-1", other) == 0  # moving a device is fine
    assert fleet("add", "meter-2", PAYEE) == 0  # its old address is free now
    state = WalletState(tmp_path / "wallet.db")
    try:
        assert {(d.name, d.address) for d in state.devices()} == {
            ("meter-1", other),
            ("meter-2", PAYEE),
        }
    finally:
        state.close()


async def test_pay_rows_refuses_two_rows_for_one_recipient(tmp_path: Path) -> None:
    node = ScriptedNode([])
    wallet = make_wallet(tmp_path, node)
    other = encode_address(derive_keypair(SEED, 6).address)
    rows = [
        PaymentRow("a", PAYEE, 100, "meter-1"),
        PaymentRow("b", other, 100),
        PaymentRow("c", PAYEE, 200, "meter-2"),
    ]
    try:
        with pytest.raises(UsageError, match=f"rows 1 and 3 both pay {PAYEE} \\(meter-2\\)"):
            await wallet.pay_rows("topup", rows)
        assert node.submitted == []
        assert wallet.state.payment_by_key("a") is None  # nothing recorded either
    finally:
        await wallet.close()


async def test_a_confirmed_payment_pruned_by_the_node_is_not_sent_again(tmp_path: Path) -> None:
    """Nodes prune confirmed history: the id is then unknown (404, status null). A retry
    with the same key trusts the recorded ``confirmed``: already sent, nothing resubmitted,
    the status never downgraded."""
    node = ScriptedNode([[{"status": "confirmed"}]])
    wallet = make_wallet(tmp_path, node)
    try:
        (outcome,) = await wallet.pay_rows("send", [PaymentRow("k-1", PAYEE, 300)])
        assert await wallet.wait(outcome.batch.id, 10, poll=0) == "confirmed"
        node.answers.clear()  # pruned

        async def pruned(tx_id: TxId) -> dict[str, Any]:
            raise NodeError(404, "not_found", f"unknown transaction {tx_id.hex()}", {})

        node.transaction = pruned  # type: ignore[method-assign]
        (again,) = await wallet.pay_rows("send", [PaymentRow("k-1", PAYEE, 300)])
        assert again.reused
        assert again.status == "confirmed"
        assert again.batch.status == "confirmed"
        assert len(node.submitted) == 1  # nothing resubmitted
        assert await wallet.wait(again.batch.id, 10, poll=0) == "confirmed"
        (listed,) = await wallet.refresh(wallet.state.batches(None))
        assert listed.status == "confirmed"
    finally:
        await wallet.close()


def test_a_broken_state_file_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_keystore(tmp_path / "keystore.json", SEED, "pw", KDF_PRESETS["minimum"])
    (tmp_path / "wallet.db").write_bytes(b"this is not an SQLite database, just text" * 50)
    code = cli.main(["--wallet-dir", str(tmp_path), "address"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"tangle-wallet: wallet state {tmp_path / 'wallet.db'}: ")
    assert "not a database" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
    code = cli.main(["--json", "--wallet-dir", str(tmp_path), "address"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert (code, error["exit_code"]) == (1, 1)
    assert error["message"].startswith("wallet state ")


def test_libsodium_failing_in_the_kdf_exits_as_a_damaged_keystore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import nacl.exceptions

    from wallet import keystore

    monkeypatch.setenv("TANGLE_WALLET_PASSWORD", "pw")
    save_keystore(tmp_path / "keystore.json", SEED, "pw", KDF_PRESETS["minimum"])

    def no_memory(*_args: object, **_kw: object) -> bytes:
        raise nacl.exceptions.RuntimeError("could not allocate memory")

    monkeypatch.setattr(keystore.argon2id, "kdf", no_memory)
    assert cli.main(["--wallet-dir", str(tmp_path), "address", "--new"]) == 8
    err = capsys.readouterr().err
    assert "password hashing failed" in err
    assert "Traceback" not in err
    # init hashes too (a new keystore): the same one line and exit code
    assert cli.main(["--wallet-dir", str(tmp_path / "new"), "init", "--kdf", "minimum"]) == 8
    assert "password hashing failed" in capsys.readouterr().err
    assert not (tmp_path / "new" / "keystore.json").exists()


def test_counts_take_ascii_digits_only_and_timeout_node_goes_anywhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["balance", "--timeout-node", "5"]).timeout_node == 5.0
    assert parser.parse_args(["--timeout-node", "7", "balance"]).timeout_node == 7.0
    assert parser.parse_args(["balance"]).timeout_node == 30.0
    ok = parser.parse_args(["policy", "set", "pump", "--min", "10", "--target", "20"])
    assert (ok.min, ok.target) == (10, 20)
    for bad in ("1_000", "²", "١٢"):
        for argv in (
            ["policy", "set", "pump", "--min", bad, "--target", "20"],
            ["history", "--limit", bad],
            ["pay-meter", "--to", PAYEE, "--price-per-kwh", bad, "--source", "-"],
            [
                "pay-meter",
                "--to",
                PAYEE,
                "--price-per-kwh",
                "1",
                "--source",
                "-",
                "--start-wh",
                bad,
            ],
        ):
            with pytest.raises(SystemExit) as stopped:
                parser.parse_args(argv)
            assert stopped.value.code == 2
            assert "expected a whole number (digits 0-9)" in capsys.readouterr().err


async def test_pay_meter_says_where_to_resume_and_skips_what_was_paid() -> None:
    """A run that fails says how far it paid; the re-run with --start-wh skips the
    readings at or below it instead of failing on them, and pays nothing twice."""
    node = CoinNode([100_000])
    payer = Payer(node, ME)
    args = argparse.Namespace(
        to=PAYEE, price_per_kwh=7, meter_id="m", every=1, start_wh=None, json=False
    )
    out: list[str] = []
    err: list[str] = []
    try:
        with pytest.raises(UsageError, match="line 4: expected a whole number of Wh"):
            await _pay(payer, args, io.StringIO("1000\n2500\n3700\n3.8k\n"), out.append, err.append)
        assert err == ["paid up to 3000 Wh; resume with --start-wh 3000"]
        assert len(out) == 2  # two payments of 1 kWh each
        paid = [o for tx in node.submitted for o in tx.outputs if o.address == PAYEE_ADDRESS]
        assert [o.amount for o in paid] == [7, 7]

        args.start_wh = 3000
        out.clear()
        err.clear()
        fixed = "1000\n2500\n3000\n3700\n4100\n"
        assert await _pay(payer, args, io.StringIO(fixed), out.append, err.append) == 0
        assert err == []
        assert len(out) == 2  # one payment (3000 → 4000 Wh), then the end
        assert "paid 7 for 1 kWh (3000–4000 Wh" in out[0]
        assert "3 readings at or below --start-wh skipped" in out[1]
        paid = [o for tx in node.submitted for o in tx.outputs if o.address == PAYEE_ADDRESS]
        assert [o.amount for o in paid] == [7, 7, 7]
    finally:
        payer.solver.close()


async def test_a_malformed_node_answer_is_a_wallet_error_not_a_traceback() -> None:
    """An answer not of the API's shape (tangle.schema) is a MalformedAnswer naming the
    request and the field, expected against actual."""

    async def tips(request: web.Request) -> web.Response:
        return web.json_response({"trunk": "zz", "branch": "00" * 32})

    async def address(request: web.Request) -> web.Response:
        body = {"address": request.match_info["address"], "balance": {"confirmed": "1"}}
        return web.json_response({**body, "outputs": []})

    async def info(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>not json</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/api/v1/tips", tips)
    app.router.add_get("/api/v1/addresses/{address}", address)
    app.router.add_get("/api/v1/info", info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with NodeClient(f"http://127.0.0.1:{port}") as client:
            with pytest.raises(MalformedAnswer, match=r"GET /tips .*trunk: expected hex"):
                await client.tips()
            with pytest.raises(MalformedAnswer, match=r"balance\.pending: expected a value"):
                await client.address(ME.address)
            with pytest.raises(MalformedAnswer, match=r"GET /info .*expected JSON"):
                await client.params()
    finally:
        await runner.cleanup()
