"""Paying and looking: ``send``, ``consolidate``, ``faucet``, ``request`` (with its QR
code), ``balance``, ``history`` and ``status``."""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

from tangle.address import decode_address, encode_address
from tangle.schema import ErrorCode, Status
from tangle.transaction import TxId
from wallet.cli import render
from wallet.cli.context import Context
from wallet.errors import NodeError, UsageError, WalletError
from wallet.ops import Outcome
from wallet.state import PaymentRow
from wallet.uri import PaymentRequest, format_payment_uri, parse_amount, parse_payment_uri


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


async def cmd_history(ctx: Context) -> int:
    wallet = ctx.wallet
    batches = wallet.state.batches(ctx.args.limit)
    with contextlib.suppress(WalletError):  # offline: show what the wallet last knew
        batches = await wallet.refresh(batches)
    ctx.emit(
        [render.batch_json(b) for b in batches],
        [render.batch_line(b) for b in batches] or ["no payments yet"],
    )
    return 0


def parse_tx_id(text: str) -> TxId:
    try:
        tx_id = TxId(bytes.fromhex(text))
    except ValueError:
        tx_id = TxId(b"")
    if len(tx_id) != 32:
        raise UsageError(f"transaction id: expected 64 hex digits, got {text!r}")
    return tx_id


async def cmd_status(ctx: Context) -> int:
    wallet = ctx.wallet
    text = ctx.args.txid.strip().lower()
    tx_id = parse_tx_id(text)
    batch = wallet.state.batch_of_tx(text)
    try:
        meta = (await wallet.client.transaction(tx_id))["metadata"]
    except NodeError as exc:
        if exc.code != ErrorCode.NOT_FOUND:
            raise
        meta = None
    data = {"tx_id": text, "metadata": meta, "wallet": render.batch_json(batch) if batch else None}
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
        lines.append("in this wallet: " + render.batch_line(batch))
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


async def wait_all(ctx: Context, outcomes: list[Outcome]) -> list[Outcome]:
    """``--wait``: each batch until confirmed, a progress line on stderr when it moves."""
    wallet = ctx.wallet
    started = time.monotonic()
    shown: list[tuple[Any, ...]] = []

    def progress(tx_id: str, meta: dict[str, Any]) -> None:
        seen = (tx_id, meta["status"], round(meta["confidence"], 2), meta["cumulative_weight"])
        if not ctx.json and (not shown or shown[-1] != seen):  # a line when something moved
            shown.append(seen)
            ctx.err(render.progress_line(tx_id, meta, time.monotonic() - started))

    done = []
    for outcome in outcomes:
        await wallet.wait(outcome.batch.id, ctx.args.timeout, progress)
        done.append(Outcome(wallet.state.batch(outcome.batch.id), outcome.reused, Status.CONFIRMED))
    return done


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
        outcomes = await wait_all(ctx, outcomes)
    ctx.emit(render.outcome_json(outcomes[0]), render.send_lines(outcomes))
    return 0


async def cmd_consolidate(ctx: Context) -> int:
    outcomes = await ctx.wallet.consolidate()
    if ctx.args.wait:
        outcomes = await wait_all(ctx, outcomes)
    lines = [
        f"swept #{o.batch.source_idx}: {o.batch.payments[0].amount} to the primary address "
        f"in {o.batch.tx_id}"
        for o in outcomes
    ]
    ctx.emit([render.outcome_json(o) for o in outcomes], lines or ["nothing to consolidate"])
    return 0


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
