"""The ``tangle-wallet`` command. The only wallet module that prints or exits.

Each subcommand sets ``handler`` (an ``async def handler(ctx) -> int``) with
``set_defaults``; a module adds commands with a ``register(subparsers)`` function listed
in :data:`REGISTRARS`. Every :class:`~wallet.errors.WalletError` (and a mistyped address)
ends as one line ``tangle-wallet: <message>`` on stderr (``{"error": …}`` with
``--json``) and the error's exit code: no traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.exceptions

from tangle import __version__
from tangle.address import decode_address, encode_address
from tangle.errors import AddressError
from tangle.transaction import TxId
from wallet.autotopup import run_daemon
from wallet.cli_pay import add_arguments as add_meter_arguments
from wallet.cli_pay import cmd_pay_meter
from wallet.errors import NodeError, UsageError, WalletError
from wallet.fleet import parse_topup_file
from wallet.keys import derive_keypair
from wallet.keystore import (
    DEFAULT_KDF,
    KDF_PRESETS,
    backup_string,
    kdf_preset,
    new_seed,
    parse_backup,
    save_keystore,
)
from wallet.ops import KEYSTORE_FILE, STATE_FILE, Outcome, Wallet
from wallet.state import Batch, PaymentRow, Policy, WalletState
from wallet.uri import (
    PaymentRequest,
    format_payment_uri,
    parse_amount,
    parse_payment_uri,
    whole_arg,
)

EXIT_USER_ERROR = 2
DEFAULT_NODE = "http://127.0.0.1:14265"
DEFAULT_DIR = "~/.tangle-wallet"
ENV_DIR = "TANGLE_WALLET_DIR"
ENV_NODE = "TANGLE_NODE"
ENV_PASSWORD = "TANGLE_WALLET_PASSWORD"
ENV_KDF = "TANGLE_WALLET_KDF"
RESTORE_GAP = 5
"""``restore --scan`` stops after this many unused addresses in a row."""

Handler = Callable[["Context"], Any]


@dataclass
class Context:
    args: argparse.Namespace
    out: Callable[[str], None] = print
    err: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    _wallet: Wallet | None = None

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    @property
    def directory(self) -> Path:
        return Path(self.args.wallet_dir).expanduser()

    @property
    def wallet(self) -> Wallet:
        if self._wallet is None:
            self._wallet = Wallet(
                self.directory, self.args.node, password, timeout=self.args.timeout_node
            )
        return self._wallet

    def emit(self, data: Any, text: str | Sequence[str]) -> None:
        if self.json:
            self.out(json.dumps(data, indent=2))
        else:
            self.out(text if isinstance(text, str) else "\n".join(text))


def password(confirm: bool = False) -> str:
    """TANGLE_WALLET_PASSWORD, or a prompt (twice when choosing one)."""
    given = os.environ.get(ENV_PASSWORD)
    if given:
        return given
    try:
        first = getpass.getpass("wallet password: ")
        if confirm and getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ; nothing was written")
    except EOFError:
        raise UsageError(f"no password: set {ENV_PASSWORD} or run in a terminal") from None
    if not first:
        raise UsageError("the password is empty")
    return first


# -- setup ------------------------------------------------------------------------------


def _kdf_name(args: argparse.Namespace) -> str:
    return str(args.kdf or os.environ.get(ENV_KDF) or DEFAULT_KDF)


def _check_new(directory: Path) -> Path:
    """The keystore path for a new wallet in ``directory``; an error if one is there."""
    path = directory / KEYSTORE_FILE
    if path.exists():
        raise UsageError(f"a wallet exists already at {path}; choose another --wallet-dir")
    if (directory / STATE_FILE).exists():
        raise UsageError(
            f"{directory / STATE_FILE} is left from another wallet (its keystore is gone); "
            "move it away or choose another --wallet-dir"
        )
    return path


def _create(ctx: Context, seed: bytes) -> Path:
    """The keystore and state file of a new wallet; neither is left behind on a failure."""
    directory = ctx.directory
    path = _check_new(directory)
    params = kdf_preset(_kdf_name(ctx.args))
    secret = password(confirm=True)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_keystore(path, seed, secret, params)
    try:
        state = WalletState(directory / STATE_FILE)
        try:
            state.add_address(0, encode_address(derive_keypair(seed, 0).address), "primary")
        finally:
            state.close()
    except BaseException:
        _remove_new_wallet(directory)
        raise
    return path


def _remove_new_wallet(directory: Path) -> None:
    """Undo :func:`_create` (whose checks made sure both files are new)."""
    for name in (KEYSTORE_FILE, STATE_FILE, STATE_FILE + "-wal", STATE_FILE + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def _read_file(name: str) -> bytes:
    path = Path(name).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _write_backup(name: str, line: str) -> Path:
    """Create ``name`` (never over an existing file, mode 0600) holding the backup line.

    Raises:
        UsageError: the file exists or cannot be created or written; nothing is left.
    """
    path = Path(name).expanduser()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists; the backup is never written over a file") from None
    except OSError as exc:
        raise UsageError(f"backup file {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write((line + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(exc, OSError):
            raise UsageError(f"backup file {path}: {exc.strerror or exc}") from None
        raise
    return path


async def cmd_init(ctx: Context) -> int:
    seed = new_seed()
    line = backup_string(seed)
    backup: Path | None = None
    if ctx.args.backup:
        _check_new(ctx.directory)  # no backup file for a wallet that cannot be created
        backup = _write_backup(ctx.args.backup, line)  # first: the line is never lost
    try:
        path = _create(ctx, seed)
    except BaseException:
        if backup is not None:  # its wallet was never made
            with contextlib.suppress(OSError):
                backup.unlink()
        raise
    primary = encode_address(derive_keypair(seed, 0).address)
    data: dict[str, Any] = {"keystore": str(path), "address": primary}
    if backup is not None:
        data["backup_file"] = str(backup)
        ctx.emit(
            data,
            [
                f"wallet created: {path}",
                f"primary address {primary}",
                f"backup written to {backup}: keep it offline; it restores every address",
            ],
        )
    else:
        data["backup"] = line
        ctx.emit(
            data,
            [
                f"wallet created: {path}",
                f"primary address {primary}",
                "",
                "Write down this backup line and keep it offline. It is the only way to",
                "restore the wallet if the password or this computer is lost:",
                "",
                f"    {line}",
            ],
        )
    return 0


async def cmd_restore(ctx: Context) -> int:
    if ctx.args.from_file:
        text = _read_file(ctx.args.from_file).decode(errors="replace")
    else:
        try:
            text = getpass.getpass("backup line (tgl-seed:…): ")
        except EOFError:
            raise UsageError("no backup line given: use --from-file FILE") from None
    seed = parse_backup(text)
    path = _create(ctx, seed)
    wallet = ctx.wallet
    wallet._seed = seed
    for _ in range(1, ctx.args.addresses):
        wallet.new_address()
    if ctx.args.scan:
        unused = 0
        index = len(wallet.state.addresses())
        while unused < RESTORE_GAP:
            address = derive_keypair(seed, index).address
            info = await wallet.client.address(address)
            if info.outputs:
                while len(wallet.state.addresses()) <= index:
                    wallet.new_address()
                unused = 0
            else:
                unused += 1
            index += 1
    rows = wallet.state.addresses()
    ctx.emit(
        {"keystore": str(path), "addresses": [r.address for r in rows]},
        [f"wallet restored: {path}", *(f"  #{r.index} {r.address}" for r in rows)],
    )
    return 0


# -- addresses and balances ---------------------------------------------------------------


async def cmd_address(ctx: Context) -> int:
    wallet = ctx.wallet
    if ctx.args.new:
        row = wallet.new_address(ctx.args.label or "")
        ctx.emit(
            {"index": row.index, "address": row.address, "label": row.label},
            f"#{row.index} {row.address} {row.label}".rstrip(),
        )
        return 0
    if ctx.args.label is not None:
        if ctx.args.index is None:
            raise UsageError("--label without --new needs --index I (the address to label)")
        if ctx.args.index not in {r.index for r in wallet.state.addresses()}:
            raise UsageError(f"--index: the wallet has no address #{ctx.args.index}")
        wallet.state.set_label(ctx.args.index, ctx.args.label)
    rows = wallet.state.addresses()
    ctx.emit(
        [{"index": r.index, "address": r.address, "label": r.label} for r in rows],
        [f"#{r.index} {r.address} {r.label}".rstrip() for r in rows],
    )
    return 0


async def cmd_balance(ctx: Context) -> int:
    rows = await ctx.wallet.balances()
    confirmed = sum(i.confirmed for _, i in rows)
    pending = sum(i.pending for _, i in rows)
    data = {
        "addresses": [
            {
                "index": r.index,
                "address": r.address,
                "label": r.label,
                "confirmed": i.confirmed,
                "pending": i.pending,
            }
            for r, i in rows
        ],
        "total": {"confirmed": confirmed, "pending": pending},
    }
    lines = [f"{'#':>3} {'address':<64} {'confirmed':>12} {'with pending':>12}"]
    lines += [
        f"{r.index:>3} {r.address:<64} {i.confirmed:>12} {i.pending:>12} {r.label}".rstrip()
        for r, i in rows
    ]
    lines.append(f"{'':>3} {'total':<64} {confirmed:>12} {pending:>12}")
    ctx.emit(data, lines)
    return 0


def _batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "batch": batch.id,
        "kind": batch.kind,
        "from_index": batch.source_idx,
        "tx_id": batch.tx_id,
        "status": batch.status,
        "note": batch.note,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created)),
        "payments": [
            {"to": p.recipient, "amount": p.amount, "key": p.key, "device": p.device}
            for p in batch.payments
        ],
        "tx_ids": list(batch.tx_ids),
        "promotions": list(batch.promotions),
    }


def _batch_line(batch: Batch) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(batch.created))
    total = sum(p.amount for p in batch.payments)
    first = batch.payments[0].device or batch.payments[0].recipient if batch.payments else "-"
    more = f" +{len(batch.payments) - 1} more" if len(batch.payments) > 1 else ""
    tx = (batch.tx_id or "-")[:16]
    return f"{when} {batch.kind:<11} {total:>10} to {first}{more}  {batch.status:<11} {tx}"


async def cmd_history(ctx: Context) -> int:
    wallet = ctx.wallet
    batches = wallet.state.batches(ctx.args.limit)
    with contextlib.suppress(WalletError):  # offline: show what the wallet last knew
        batches = await wallet.refresh(batches)
    ctx.emit(
        [_batch_json(b) for b in batches],
        [_batch_line(b) for b in batches] or ["no payments yet"],
    )
    return 0


async def cmd_status(ctx: Context) -> int:
    wallet = ctx.wallet
    text = ctx.args.txid.strip().lower()
    try:
        tx_id = TxId(bytes.fromhex(text))
        if len(tx_id) != 32:
            raise ValueError
    except ValueError:
        raise UsageError(f"transaction id: expected 64 hex digits, got {text!r}") from None
    batch = wallet.state.batch_of_tx(text)
    try:
        meta = (await wallet.client.transaction(tx_id))["metadata"]
    except NodeError as exc:
        if exc.status != 404:
            raise
        meta = None
    data = {"tx_id": text, "metadata": meta, "wallet": _batch_json(batch) if batch else None}
    if meta is None:
        lines = [f"{text}: unknown to the node at {wallet.node_url}"]
    else:
        lines = [
            f"{text}: {meta['status']}, confidence {meta['confidence']}, "
            f"weight {meta['cumulative_weight']}"
        ]
        if meta.get("should_promote"):
            lines.append("advice: promote (send --wait does it)")
        if meta.get("should_reattach"):
            lines.append("advice: reattach (send --wait does it)")
    if batch is not None:
        lines.append("in this wallet: " + _batch_line(batch))
        if batch.tx_id and batch.tx_id != text:
            lines.append(f"replaced by {batch.tx_id} (same payment, same inputs)")
    ctx.emit(data, lines)
    return 0


async def cmd_faucet(ctx: Context) -> int:
    wallet = ctx.wallet
    amount = parse_amount(ctx.args.amount)
    rows = {r.index: r for r in wallet.state.addresses()}
    if ctx.args.index not in rows:
        raise UsageError(f"--index: the wallet has no address #{ctx.args.index}")
    row = rows[ctx.args.index]
    tx_id = await wallet.client.faucet(decode_address(row.address), amount)
    ctx.emit(
        {"tx_id": tx_id.hex(), "address": row.address, "amount": amount},
        f"faucet paid {amount} to #{row.index} {row.address}: {tx_id.hex()}",
    )
    return 0


# -- paying -------------------------------------------------------------------------------


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {**_batch_json(outcome.batch), "already_sent": outcome.reused}


async def _wait_all(ctx: Context, outcomes: list[Outcome]) -> list[Outcome]:
    wallet = ctx.wallet
    timeout = ctx.args.timeout
    started = time.monotonic()

    shown: list[tuple[Any, ...]] = []

    def progress(tx_id: str, meta: dict[str, Any]) -> None:
        seen = (tx_id, meta["status"], round(meta["confidence"], 2), meta["cumulative_weight"])
        if not ctx.json and (not shown or shown[-1] != seen):  # a line when something moved
            shown.append(seen)
            ctx.err(
                f"  {tx_id[:16]} {meta['status']:<10} confidence {meta['confidence']:.2f} "
                f"weight {meta['cumulative_weight']} ({time.monotonic() - started:.0f} s)"
            )

    done = []
    for outcome in outcomes:
        await wallet.wait(outcome.batch.id, timeout, progress)
        done.append(Outcome(wallet.state.batch(outcome.batch.id), outcome.reused, "confirmed"))
    return done


def _send_lines(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        b = o.batch
        total = sum(p.amount for p in b.payments)
        verb = "already sent" if o.reused else "sent"
        lines.append(f"{verb} {total} in {len(b.payments)} payment(s): {b.tx_id} ({b.status})")
    return lines


async def cmd_send(ctx: Context) -> int:
    args = ctx.args
    if args.target.lower().startswith("tangle:"):
        request = parse_payment_uri(args.target)
        if request.amount is None and args.amount is None:
            raise UsageError("the payment request has no amount: give AMOUNT")
        amount = parse_amount(args.amount) if args.amount is not None else request.amount
        if request.amount is not None and amount != request.amount:
            raise UsageError(f"AMOUNT {amount} differs from the request's amount {request.amount}")
        address = request.address
    else:
        address = decode_address(args.target.strip())
        if args.amount is None:
            raise UsageError("send needs ADDRESS AMOUNT (or a tangle: payment request)")
        amount = parse_amount(args.amount)
    assert amount is not None
    row = PaymentRow(args.idempotency_key, encode_address(address), amount)
    outcomes = await ctx.wallet.pay_rows("send", [row])
    if args.wait:
        outcomes = await _wait_all(ctx, outcomes)
    ctx.emit(_outcome_json(outcomes[0]), _send_lines(outcomes))
    return 0


async def cmd_consolidate(ctx: Context) -> int:
    outcomes = await ctx.wallet.consolidate()
    if ctx.args.wait:
        outcomes = await _wait_all(ctx, outcomes)
    lines = [
        f"swept #{o.batch.source_idx}: {o.batch.payments[0].amount} to the primary address "
        f"in {o.batch.tx_id}"
        for o in outcomes
    ]
    ctx.emit([_outcome_json(o) for o in outcomes], lines or ["nothing to consolidate"])
    return 0


async def cmd_demo(ctx: Context) -> int:
    """Devices paying each other through the wallet on a devnet of real nodes."""
    import tempfile

    from tangle.demo import DemoError
    from tangle.demo.machines import run_demo

    args = ctx.args
    if not 1 <= args.nodes <= 16:
        raise UsageError(f"--nodes: expected 1 to 16, got {args.nodes}")
    if args.duration <= 0:
        raise UsageError(f"--duration: expected seconds > 0, got {args.duration}")

    def emit(line: str) -> None:
        ctx.out(line)
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="tangle-demo-") as tmp:
        try:
            problems = await run_demo(
                emit,
                nodes=args.nodes,
                base_port=args.base_port,
                data_dir=args.data_dir or Path(tmp),
                duration=args.duration,
                seed=args.seed,
            )
        except (DemoError, ValueError) as exc:
            raise UsageError(f"demo: {exc}") from None
    return 0 if problems == 0 else 1


async def cmd_request(ctx: Context) -> int:
    args = ctx.args
    if args.address:
        address = decode_address(args.address.strip())
    else:
        address = decode_address(ctx.wallet.primary().address)
    amount = parse_amount(args.amount) if args.amount is not None else None
    uri = format_payment_uri(PaymentRequest(address, amount, args.label or None))
    if ctx.json:
        ctx.emit({"uri": uri, "address": encode_address(address), "amount": amount}, "")
        return 0
    lines = [uri]
    if not args.no_qr:
        import segno  # only this command needs it

        buffer = io.StringIO()
        segno.make(uri, error="m").terminal(out=buffer, compact=True)
        lines.append(buffer.getvalue().rstrip("\n"))
    ctx.emit({}, lines)
    return 0


# -- fleet --------------------------------------------------------------------------------


async def cmd_fleet_add(ctx: Context) -> int:
    name = ctx.args.name.strip()
    if not name or "," in name or name.lower().startswith("tgl1"):
        raise UsageError(f"device name {name!r}: not empty, no commas, not like an address")
    address = encode_address(decode_address(ctx.args.address.strip()))
    state = ctx.wallet.state
    for device in state.devices():
        if device.address == address and device.name != name:
            raise UsageError(
                f"{address} is already in the fleet as {device.name!r}; one device per "
                f"address (rename: add {name!r} with its own address)"
            )
    state.add_device(name, address)
    ctx.emit({"name": name, "address": address}, f"fleet: {name} = {address}")
    return 0


async def cmd_fleet_list(ctx: Context) -> int:
    wallet = ctx.wallet
    devices = wallet.state.devices()
    policies = {p.name: p for p in wallet.state.policies()}
    balances = await wallet.device_balances() if devices else {}
    data, lines = [], []
    for d in devices:
        info, policy = balances[d.name], policies.get(d.name)
        data.append(
            {
                "name": d.name,
                "address": d.address,
                "confirmed": info.confirmed,
                "pending": info.pending,
                "policy": None
                if policy is None
                else {"min": policy.min, "target": policy.target, "daily_cap": policy.daily_cap},
            }
        )
        rule = "" if policy is None else f" (min {policy.min}, target {policy.target})"
        lines.append(f"{d.name:<16} {d.address} {info.confirmed:>10} {info.pending:>10}{rule}")
    ctx.emit(data, lines or ["no devices: add one with `tangle-wallet fleet add NAME ADDRESS`"])
    return 0


async def cmd_topup(ctx: Context) -> int:
    args = ctx.args
    wallet = ctx.wallet
    state = wallet.state
    devices = {d.name: d.address for d in state.devices()}
    if args.file:
        if args.name or args.amount:
            raise UsageError("topup: give NAME AMOUNT or --file FILE, not both")
        path = Path(args.file).expanduser()  # noqa: ASYNC240 (no I/O)
        data = _read_file(args.file)

        def existing(key: str) -> tuple[str, int] | None:
            found = state.payment_by_key(key)
            return None if found is None else (found[0].recipient, found[0].amount)

        parsed = parse_topup_file(data, str(path), devices, existing, args.batch_key)
        rows = [PaymentRow(r.key, r.address, r.amount, r.device) for r in parsed]
    else:
        if not (args.name and args.amount):
            raise UsageError("topup needs NAME AMOUNT or --file FILE")
        if args.name not in devices:
            raise UsageError(f"no device {args.name!r} in the fleet: `fleet add` it first")
        amount = parse_amount(args.amount)
        rows = [PaymentRow(args.idempotency_key, devices[args.name], amount, args.name)]
    outcomes = await wallet.pay_rows("topup", rows)
    if args.wait:
        outcomes = await _wait_all(ctx, outcomes)
    ctx.emit([_outcome_json(o) for o in outcomes], _send_lines(outcomes))
    return 0


async def cmd_policy_set(ctx: Context) -> int:
    args = ctx.args
    state = ctx.wallet.state
    if state.device(args.name) is None:
        raise UsageError(f"no device {args.name!r} in the fleet: `fleet add` it first")
    if args.min < 0 or args.target <= args.min:
        raise UsageError(
            f"policy: expected 0 ≤ min < target, got min {args.min}, target {args.target}"
        )
    if args.daily_cap is not None and args.daily_cap < 1:
        raise UsageError(f"--daily-cap: expected ≥ 1, got {args.daily_cap}")
    policy = Policy(args.name, args.min, args.target, args.daily_cap)
    state.set_policy(policy)
    ctx.emit(_policy_json(policy), _policy_line(policy))
    return 0


def _policy_json(p: Policy) -> dict[str, Any]:
    return {"name": p.name, "min": p.min, "target": p.target, "daily_cap": p.daily_cap}


def _policy_line(p: Policy) -> str:
    cap = "no daily cap" if p.daily_cap is None else f"at most {p.daily_cap} a day (UTC)"
    return f"{p.name}: below {p.min}, top up to {p.target}, {cap}"


async def cmd_policy_list(ctx: Context) -> int:
    policies = ctx.wallet.state.policies()
    ctx.emit([_policy_json(p) for p in policies], [_policy_line(p) for p in policies] or ["none"])
    return 0


async def cmd_autotopup(ctx: Context) -> int:
    wallet = ctx.wallet
    wallet.seed()  # ask for the password now, not at the first top-up

    def log(line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ctx.err(f"{stamp} {line}")

    if ctx.args.once:
        plans = await wallet.autotopup_pass(log)
        ctx.emit(
            [
                {"device": p.device, "balance": p.balance, "paid": p.amount, "cap_left": p.cap_left}
                for p in plans
            ],
            [f"{p.device}: balance {p.balance}, paid {p.amount}" for p in plans]
            or ["every device is above its minimum"],
        )
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the caller stops it another way
    try:
        await run_daemon(wallet, ctx.args.interval, stop, log)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


# -- the parser ---------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes too (``tangle-wallet balance --json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("--wallet-dir", default=argparse.SUPPRESS)
    common.add_argument("--node", default=argparse.SUPPRESS)
    common.add_argument("--timeout-node", type=float, default=argparse.SUPPRESS)
    return common


def register(commands: Any) -> None:
    """The wallet's own commands."""
    common = _common()

    def add(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, help=help, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    check = add("check-address", cmd_check_address, "verify an address's checksum")
    check.add_argument("address", help="a tgl1… address")

    meter = add("pay-meter", cmd_pay_meter, "pay a seller per kWh as meter readings arrive")
    meter.description = (
        "Read cumulative meter readings (Wh), one a line: 'WH' or '2026-11-22T10:00:00Z,WH'. "
        "Each time EVERY whole kWh are complete, post the reading as a data transaction and "
        "pay units × price, referencing it. The first reading is the baseline unless "
        "--start-wh is given."
    )
    add_meter_arguments(meter)

    for name, handler, what in (
        ("init", cmd_init, "create a new wallet and show its backup line"),
        ("restore", cmd_restore, "recreate a wallet from its backup line"),
    ):
        sub = add(name, handler, what)
        sub.add_argument(
            "--kdf",
            choices=sorted(KDF_PRESETS),
            help=f"password hashing cost (default {DEFAULT_KDF}, or ${ENV_KDF})",
        )
    init = commands.choices["init"]
    init.add_argument("--backup", metavar="FILE", help="write the backup line to FILE (0600)")
    restore = commands.choices["restore"]
    restore.add_argument("--from-file", metavar="FILE", help="read the backup line from FILE")
    restore.add_argument(
        "--addresses", type=whole_arg, default=1, help="derive this many addresses"
    )
    restore.add_argument("--scan", action="store_true", help="also find used addresses on the node")

    address = add("address", cmd_address, "list addresses, or derive a new one")
    address.add_argument("--new", action="store_true", help="derive the next address")
    address.add_argument("--label", help="label for the new (or --index) address")
    address.add_argument("--index", type=whole_arg, help="the address to label")

    add("balance", cmd_balance, "confirmed and pending balance per address")
    history = add("history", cmd_history, "payments sent, with their status")
    history.add_argument("--limit", type=whole_arg, help="only the latest N")
    status = add("status", cmd_status, "a transaction's status and advice")
    status.add_argument("txid")

    for name, handler, what in (
        ("send", cmd_send, "pay an address (or a tangle: payment request)"),
        ("consolidate", cmd_consolidate, "sweep each address's coins to the primary address"),
        ("topup", cmd_topup, "pay fleet devices: NAME AMOUNT or --file fleet.csv"),
    ):
        sub = add(name, handler, what)
        sub.add_argument("--wait", action="store_true", help="until confirmed (promote, reattach)")
        sub.add_argument("--timeout", type=float, default=120.0, help="for --wait (seconds)")
    send = commands.choices["send"]
    send.add_argument("target", metavar="ADDRESS", help="tgl1… address or tangle:… request")
    send.add_argument("amount", metavar="AMOUNT", nargs="?")
    send.add_argument("--idempotency-key", metavar="K", help="a retry with K never pays twice")

    faucet = add("faucet", cmd_faucet, "dev networks: have the node's faucet pay you")
    faucet.add_argument("amount")
    faucet.add_argument("--index", type=whole_arg, default=0, help="address to fund (default 0)")

    demo = add("demo", cmd_demo, "a devnet where machines pay per kWh and per KiB (make demo)")
    demo.add_argument("--nodes", type=int, default=3, help="devnet nodes (default 3)")
    demo.add_argument("--base-port", type=int, default=14265, help="first API port")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    demo.add_argument("--data-dir", type=Path, help="devnet data (default: a temporary dir)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")

    request = add("request", cmd_request, "a payment request URI and its QR code")
    request.add_argument("address", nargs="?", help="default: the primary address")
    request.add_argument("--amount")
    request.add_argument("--label")
    request.add_argument("--no-qr", action="store_true")


def register_fleet(commands: Any) -> None:
    """Fleet commands: devices, top-ups, policies and the autotopup daemon."""
    common = _common()
    fleet = commands.add_parser("fleet", help="devices the wallet pays", parents=[common])
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    add = fleet_commands.add_parser("add", help="add or move a device", parents=[common])
    add.add_argument("name")
    add.add_argument("address")
    add.set_defaults(handler=cmd_fleet_add)
    fleet_commands.add_parser("list", help="devices with balances", parents=[common]).set_defaults(
        handler=cmd_fleet_list
    )

    topup = commands.choices["topup"]
    topup.add_argument("name", nargs="?")
    topup.add_argument("amount", nargs="?")
    topup.add_argument("--file", metavar="CSV", help="rows name_or_address,amount[,key]")
    topup.add_argument("--idempotency-key", metavar="K")
    topup.add_argument(
        "--batch-key",
        metavar="TAG",
        help="key prefix for rows without a key (default: file:<the file's name>)",
    )

    policy = commands.add_parser("policy", help="top-up rules per device", parents=[common])
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    pset = policy_commands.add_parser("set", help="set a device's rule", parents=[common])
    pset.add_argument("name")
    pset.add_argument("--min", type=whole_arg, required=True)
    pset.add_argument("--target", type=whole_arg, required=True)
    pset.add_argument("--daily-cap", type=whole_arg)
    pset.set_defaults(handler=cmd_policy_set)
    policy_commands.add_parser("list", help="the rules", parents=[common]).set_defaults(
        handler=cmd_policy_list
    )

    auto = commands.add_parser(
        "autotopup", help="keep devices above their minimum", parents=[common]
    )
    auto.add_argument("--once", action="store_true", help="one pass, then exit")
    auto.add_argument("--interval", type=float, default=30.0, help="poll every S seconds")
    auto.set_defaults(handler=cmd_autotopup)


REGISTRARS: list[Callable[[Any], None]] = [register, register_fleet]


async def cmd_check_address(ctx: Context) -> int:
    try:
        raw = decode_address(ctx.args.address.strip())
    except AddressError as exc:
        if ctx.json:
            ctx.out(json.dumps({"valid": False, "error": str(exc)}))
        else:
            ctx.err(f"tangle-wallet: invalid address: {exc}")
        return EXIT_USER_ERROR
    canonical = encode_address(raw)
    ctx.emit(
        {"valid": True, "address": canonical, "hex": raw.hex()},
        f"valid address {canonical}\nhex {raw.hex()}",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tangle-wallet", description="Wallet for the tangle micropayment network."
    )
    parser.add_argument("--version", action="version", version=f"tangle-wallet {__version__}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--wallet-dir",
        default=os.environ.get(ENV_DIR, DEFAULT_DIR),
        help=f"where the keystore and state live (default {DEFAULT_DIR}, or ${ENV_DIR})",
    )
    parser.add_argument(
        "--node",
        default=os.environ.get(ENV_NODE, DEFAULT_NODE),
        help=f"the node's API (default {DEFAULT_NODE}, or ${ENV_NODE})",
    )
    parser.add_argument(
        "--timeout-node", type=float, default=30.0, help="seconds to wait for each node answer"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for registrar in REGISTRARS:
        registrar(commands)
    return parser


def _error_json(exc: Exception, code: int) -> str:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "exit_code": code}
    for name in ("available", "needed", "status", "code"):
        if hasattr(exc, name):
            error[name] = getattr(exc, name)
    return json.dumps({"error": error})


async def _run(ctx: Context) -> int:
    try:
        code: int = await ctx.args.handler(ctx)
        return code
    finally:
        if ctx._wallet is not None:
            await ctx._wallet.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = Context(args)
    try:
        try:
            return asyncio.run(_run(ctx))
        except sqlite3.Error as exc:  # the state file: locked, damaged, not a database
            raise StateError(f"wallet state {ctx.directory / STATE_FILE}: {exc}") from None
        except nacl.exceptions.CryptoError as exc:  # libsodium (argon2id memory, limits)
            raise KdfFailed(f"the password hashing failed: {exc or type(exc).__name__}") from None
    except (WalletError, AddressError) as exc:
        code = exc.exit_code if isinstance(exc, WalletError) else EXIT_USER_ERROR
        if args.json:
            print(_error_json(exc, code))
        else:
            what = "invalid address: " if isinstance(exc, AddressError) else ""
            print(f"tangle-wallet: {what}{exc}", file=sys.stderr)
        return code
    except OSError as exc:  # a folder or file the wallet cannot read or write
        if args.json:
            print(_error_json(exc, 1))
        else:
            print(f"tangle-wallet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tangle-wallet: interrupted", file=sys.stderr)
        return 130


class StateError(WalletError):
    """The state file (SQLite) failed: locked by another program, damaged, not SQLite."""


class KdfFailed(WalletError):
    """libsodium's password hashing failed (the keystore-damaged exit code)."""

    exit_code = 8


if __name__ == "__main__":
    sys.exit(main())
