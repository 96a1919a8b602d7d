"""The fleet: top-up files and the top-up policy, both pure (no node, no files).

A top-up file is CSV, one row per device: ``name_or_address,amount[,idempotency_key]``.
Blank lines and lines starting with ``#`` are skipped; a first line whose amount column
is ``amount`` is a header. Every row is checked before anything is paid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath

from tangle.address import decode_address, encode_address
from tangle.errors import AddressError
from wallet.errors import BadFile, UsageError
from wallet.state import Policy
from wallet.uri import whole_number


@dataclass(frozen=True, slots=True)
class TopupRow:
    line: int
    device: str | None
    """The fleet name, when the row named a device."""
    address: str
    amount: int
    key: str


def file_tag(path: str) -> str:
    """The default key prefix of a file's rows: its name, so running it again, or with
    rows added, pays no row twice. A new round of top-ups takes a new name or tag."""
    return "file:" + PurePath(path).name


def parse_topup_file(
    data: bytes,
    path: str,
    devices: Mapping[str, str],
    existing: Callable[[str], tuple[str, int] | None],
    tag: str | None = None,
) -> list[TopupRow]:
    """Every row of a top-up file, or :class:`BadFile` naming every bad row.

    ``devices`` maps fleet names to addresses; ``existing(key)`` gives the recipient and
    amount already recorded under a key, so a key reused for another payment is a bad row.
    A row without a key gets ``<tag>:<address>`` (``tag`` defaults to :func:`file_tag`).
    """
    tag = tag or file_tag(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc})") from None
    rows: list[TopupRow] = []
    problems: list[tuple[int, str]] = []
    seen_address: dict[str, int] = {}
    seen_key: dict[str, int] = {}
    for line, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and not problems and len(cells) > 1 and cells[1].lower() == "amount":
            continue  # header
        if len(cells) not in (2, 3):
            problems.append(
                (line, f"expected name_or_address,amount[,key], got {len(cells)} columns")
            )
            continue
        who, amount_text = cells[0], cells[1]
        if who in devices:
            device: str | None = who
            address = devices[who]
        else:
            device = None
            try:
                address = encode_address(decode_address(who))
            except AddressError as exc:
                what = "not a fleet device" if not who.lower().startswith("tgl1") else "bad address"
                problems.append((line, f"{who!r}: {what} ({exc})"))
                continue
        amount = whole_number(amount_text)
        if amount is None:
            problems.append((line, f"amount {amount_text!r} is not a whole number (digits 0-9)"))
            continue
        if amount < 1:
            problems.append((line, f"amount {amount} is below 1"))
            continue
        key = cells[2] if len(cells) == 3 and cells[2] else f"{tag}:{address}"
        if address in seen_address:
            problems.append(
                (line, f"{who!r} is paid on line {seen_address[address]} too; one row per device")
            )
            continue
        if key in seen_key:
            problems.append((line, f"key {key!r} is used on line {seen_key[key]} too"))
            continue
        before = existing(key)
        if before is not None and before != (address, amount):
            problems.append(
                (
                    line,
                    f"key {key!r} already paid {before[1]} to {before[0]}; a key names one payment",
                )
            )
            continue
        seen_address[address] = line
        seen_key[key] = line
        rows.append(TopupRow(line, device, address, amount, key))
    if problems:
        raise BadFile(path, problems)
    if not rows:
        raise UsageError(f"{path}: no rows to pay")
    return rows


@dataclass(frozen=True, slots=True)
class TopupPlan:
    device: str
    balance: int
    amount: int
    """0 when the device is below its minimum but the day's cap is used up."""
    cap_left: int | None


def plan_topups(
    policies: list[Policy], balances: Mapping[str, int], paid_today: Mapping[str, int]
) -> list[TopupPlan]:
    """Top-ups for the devices below their minimum: up to target, within the daily cap."""
    plans = []
    for policy in policies:
        balance = balances.get(policy.name)
        if balance is None or balance >= policy.min:
            continue
        want = policy.target - balance
        cap_left = None
        if policy.daily_cap is not None:
            cap_left = max(0, policy.daily_cap - paid_today.get(policy.name, 0))
            want = min(want, cap_left)
        plans.append(TopupPlan(policy.name, balance, max(0, want), cap_left))
    return plans
