"""``tangle-wallet pay-meter``: pay per kWh from a file or pipe of meter readings.

Input format (docs/PAYMENTS.md): one cumulative reading per line, ``WH`` or
``TIMESTAMP,WH`` with an ISO 8601 timestamp; blank lines and lines starting with ``#``
are skipped. The payments are :class:`wallet.meter.MeterPayer`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO

from tangle.address import decode_address, encode_address
from tangle.errors import TangleError
from tangle.signing import SEED_SIZE
from wallet.cli.context import Context
from wallet.client import NodeClient
from wallet.errors import MeterError, UsageError
from wallet.keys import derive_keypair
from wallet.meter import MeterPayer, MeterPayment
from wallet.payments import Payer
from wallet.uri import whole_number


def parse_line(text: str, lineno: int) -> tuple[int, int | None] | None:
    """(Wh, timestamp ms or None) from one line; None for a blank or comment line.

    Raises:
        UsageError: the line is malformed, naming its number.
    """
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    stamp, _, value = text.rpartition(",")
    timestamp: int | None = None
    if stamp:
        try:
            moment = datetime.fromisoformat(stamp.strip())
        except ValueError:
            raise UsageError(f"line {lineno}: bad timestamp {stamp.strip()!r}") from None
        if moment.tzinfo is None:
            raise UsageError(f"line {lineno}: timestamp {stamp.strip()!r} has no time zone")
        timestamp = int(moment.timestamp() * 1000)
    value = value.strip()
    wh = whole_number(value)
    if wh is None:
        raise UsageError(
            f"line {lineno}: expected a whole number of Wh (digits 0-9), got {value!r}"
        )
    return wh, timestamp


def load_seed(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise UsageError(f"key file {path}: {exc.strerror or exc}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"key file {path}: not hex") from None
    if len(seed) != SEED_SIZE:
        raise UsageError(f"key file {path}: expected {SEED_SIZE} bytes, got {len(seed)}")
    return seed


def _describe(payment: MeterPayment, as_json: bool) -> str:
    note = payment.note
    if as_json:
        return json.dumps(
            {
                "event": "payment",
                "sequence": payment.reading.sequence,
                "reading_wh": payment.reading.wh,
                "from_wh": note.from_wh,
                "to_wh": note.to_wh,
                "kwh": note.units,
                "amount": str(note.amount),
                "to": encode_address(payment.seller),
                "payment": payment.payment_tx.id.hex(),
                "reading_tx": payment.reading_tx.id.hex(),
            }
        )
    return (
        f"paid {note.amount} for {note.units} kWh ({note.from_wh}–{note.to_wh} Wh, reading "
        f"#{payment.reading.sequence} at {payment.reading.wh} Wh) payment "
        f"{payment.payment_tx.id.hex()} reading-tx {payment.reading_tx.id.hex()}"
    )


async def _pay(
    payer: Payer,
    args: argparse.Namespace,
    source: IO[str],
    out: Callable[[str], None],
    err: Callable[[str], None] = lambda _line: None,
) -> int:
    """Feed every reading of ``source``; on any error exit ``err`` says where to resume."""
    try:
        seller = decode_address(args.to.strip())
    except TangleError as exc:
        raise UsageError(f"--to: {exc}") from None
    as_json = bool(getattr(args, "json", False))
    meter = MeterPayer(
        payer=payer,
        seller=seller,
        price_per_kwh=args.price_per_kwh,
        meter_id=args.meter_id,
        every=args.every,
        paid_wh=args.start_wh,
    )
    lineno = skipped = 0
    try:
        while line := await asyncio.to_thread(source.readline):
            lineno += 1
            parsed = parse_line(line, lineno)
            if parsed is None:
                continue
            if args.start_wh is not None and parsed[0] <= args.start_wh and meter.last_wh is None:
                skipped += 1  # paid already (a run resumed with --start-wh)
                continue
            try:
                payment = await meter.feed(*parsed)
            except MeterError as exc:
                raise UsageError(f"line {lineno}: {exc}") from None
            if payment is not None:
                out(_describe(payment, as_json))
    except BaseException:
        if meter.paid_wh is None:
            err("nothing was paid; run again over the same readings")
        else:
            err(f"paid up to {meter.paid_wh} Wh; resume with --start-wh {meter.paid_wh}")
        raise
    if as_json:
        out(
            json.dumps(
                {
                    "event": "end",
                    "lines": lineno,
                    "skipped": skipped,
                    "paid_wh": meter.paid_wh,
                    "carried_wh": meter.carried_wh,
                }
            )
        )
    else:
        done = "" if meter.paid_wh is None else f"paid up to {meter.paid_wh} Wh; "
        out(
            f"end of readings after {lineno} lines; {done}{meter.carried_wh} Wh carried, "
            "unpaid" + (f"; {skipped} readings at or below --start-wh skipped" if skipped else "")
        )
    return 0


async def cmd_pay_meter(ctx: Context) -> int:
    """The ``pay-meter`` handler: exit 0 at the end
    of the readings; a bad line raises :class:`UsageError` naming it, after paying for
    the lines before it. On any error stderr says ``paid up to X Wh; resume with
    --start-wh X``; with ``--start-wh`` the readings at or below it are skipped."""
    args = ctx.args

    def out(line: str) -> None:
        ctx.out(line)
        sys.stdout.flush()  # a line per payment, as it happens, even into a pipe

    if args.source == "-":
        source: IO[str] = sys.stdin
    else:
        try:
            source = await asyncio.to_thread(open, args.source, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--source {args.source}: {exc.strerror or exc}") from None
    try:
        if args.key_file is None:
            wallet = ctx.wallet
            return await _pay(wallet.payer(wallet.primary().index), args, source, out, ctx.err)
        keypair = derive_keypair(load_seed(args.key_file), 0)
        async with NodeClient(args.node) as client:
            payer = Payer(client, keypair)
            try:
                return await _pay(payer, args, source, out, ctx.err)
            finally:
                payer.solver.close()
    finally:
        if source is not sys.stdin:
            source.close()
