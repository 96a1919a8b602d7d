"""``tangle-wallet pay-meter``: pay per kWh from a file or pipe of meter readings.

:func:`register` adds the subcommand to the wallet's parser; its handler takes the
parsed arguments and returns the exit code. Input format (docs/PAYMENTS.md): one
cumulative reading per line, ``WH`` or ``TIMESTAMP,WH`` with an ISO 8601 timestamp;
blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from tangle.address import decode_address, encode_address
from tangle.errors import TangleError
from tangle.signing import SEED_SIZE
from wallet.client import DEFAULT_NODE, NodeClient
from wallet.errors import UsageError, WalletError
from wallet.keys import derive_keypair
from wallet.meter import MeterError, MeterPayer, MeterPayment
from wallet.payments import Payer


def register(subparsers: Any) -> None:
    """Add ``pay-meter`` to ``subparsers`` (what ``add_subparsers`` returned)."""
    cmd = subparsers.add_parser(
        "pay-meter",
        help="pay a seller per kWh as cumulative meter readings arrive",
        description="Read cumulative meter readings (Wh), one a line: 'WH' or "
        "'2026-11-22T10:00:00Z,WH'. Each time EVERY whole kWh complete, post the reading "
        "as a data transaction and pay units × price, referencing it. The first reading is "
        "the baseline unless --start-wh is given.",
    )
    cmd.add_argument("--to", required=True, metavar="ADDRESS", help="the seller's tgl1… address")
    cmd.add_argument(
        "--price-per-kwh",
        required=True,
        type=int,
        metavar="P",
        help="smallest units per kWh (an integer ≥ 1)",
    )
    cmd.add_argument(
        "--source", required=True, metavar="FILE", help="readings file, or - for stdin"
    )
    cmd.add_argument("--every", type=int, default=1, metavar="N", help="pay every N kWh (1)")
    cmd.add_argument("--meter-id", default="meter", help="the meter's name in each reading")
    cmd.add_argument("--start-wh", type=int, default=None, help="Wh already paid for")
    cmd.add_argument("--node", default=DEFAULT_NODE, metavar="URL", help="node API URL")
    cmd.add_argument(
        "--key-file",
        required=True,
        type=Path,
        metavar="F",
        help="file holding the paying wallet's 32-byte seed in hex (key 0 pays)",
    )
    cmd.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON object per payment",
    )
    cmd.set_defaults(handler=pay_meter)


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
    if not value.isdigit():
        raise UsageError(f"line {lineno}: expected a whole number of Wh, got {value!r}")
    return int(value), timestamp


def _load_seed(path: Path) -> bytes:
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


async def _run(args: argparse.Namespace, source: IO[str], out: Callable[[str], None]) -> int:
    try:
        seller = decode_address(args.to.strip())
    except TangleError as exc:
        raise UsageError(f"--to: {exc}") from None
    keypair = derive_keypair(_load_seed(args.key_file), 0)
    as_json = bool(getattr(args, "json", False))
    async with NodeClient(args.node) as client:
        payer = Payer(client, keypair)
        try:
            meter = MeterPayer(
                payer=payer,
                seller=seller,
                price_per_kwh=args.price_per_kwh,
                meter_id=args.meter_id,
                every=args.every,
                paid_wh=args.start_wh,
            )
            lineno = 0
            while line := await asyncio.to_thread(source.readline):
                lineno += 1
                parsed = parse_line(line, lineno)
                if parsed is None:
                    continue
                try:
                    payment = await meter.feed(*parsed)
                except MeterError as exc:
                    raise UsageError(f"line {lineno}: {exc}") from None
                if payment is not None:
                    out(_describe(payment, as_json))
        finally:
            payer.solver.close()
    if as_json:
        out(json.dumps({"event": "end", "lines": lineno, "carried_wh": meter.carried_wh}))
    else:
        out(f"end of readings after {lineno} lines; {meter.carried_wh} Wh carried, unpaid")
    return 0


def pay_meter(args: argparse.Namespace) -> int:
    """The ``pay-meter`` handler: exit 0 at the end of the readings."""
    try:
        if args.source == "-":
            return asyncio.run(_run(args, sys.stdin, print))
        try:
            source = open(args.source, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"--source {args.source}: {exc.strerror or exc}") from None
        with source:
            return asyncio.run(_run(args, source, lambda s: print(s, flush=True)))
    except WalletError as exc:
        print(f"tangle-wallet pay-meter: {exc}", file=sys.stderr)
        return exc.exit_code
