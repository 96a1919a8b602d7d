"""The fleet: ``fleet add|list``, ``topup``, ``policy set|list`` and ``autotopup``."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tangle.address import decode_address, encode_address
from wallet.autotopup import run_daemon
from wallet.cli import render
from wallet.cli.context import Context
from wallet.cli.payments import wait_all
from wallet.cli.setup import read_file
from wallet.errors import UsageError
from wallet.fleet import parse_topup_file
from wallet.state import PaymentRow, Policy
from wallet.uri import parse_amount


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
        data = read_file(args.file)

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
        outcomes = await wait_all(ctx, outcomes)
    ctx.emit([render.outcome_json(o) for o in outcomes], render.send_lines(outcomes))
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
    ctx.emit(render.policy_json(policy), render.policy_line(policy))
    return 0


async def cmd_policy_list(ctx: Context) -> int:
    policies = ctx.wallet.state.policies()
    ctx.emit(
        [render.policy_json(p) for p in policies],
        [render.policy_line(p) for p in policies] or ["none"],
    )
    return 0


async def cmd_autotopup(ctx: Context) -> int:
    wallet = ctx.wallet
    wallet.seed()  # ask for the password now, not at the first top-up

    def log(line: str) -> None:
        ctx.err(f"{render.utc(time.time())} {line}")

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
