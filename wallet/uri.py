"""Payment requests: ``tangle:<address>?amount=N&label=L`` (amount in the smallest unit)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlencode

from tangle.address import Address, decode_address, encode_address
from tangle.errors import AddressError
from wallet.errors import UsageError

SCHEME = "tangle"
_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str) -> int | None:
    """``text`` (spaces around it aside) as an int when it is ASCII digits 0-9 only, else
    None: ``int()`` alone would take ``1_000``, ``+5`` and non-ASCII digits such as ``١``,
    and ``str.isdigit`` takes ``²``."""
    text = text.strip()
    return int(text) if _DIGITS.fullmatch(text) else None


def whole_arg(text: str) -> int:
    """An argparse ``type``: a whole number ≥ 0 in ASCII digits."""
    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a whole number (digits 0-9), got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    address: Address
    amount: int | None = None
    label: str | None = None


def format_payment_uri(request: PaymentRequest) -> str:
    query: dict[str, str] = {}
    if request.amount is not None:
        query["amount"] = str(request.amount)
    if request.label:
        query["label"] = request.label
    uri = f"{SCHEME}:{encode_address(request.address)}"
    return f"{uri}?{urlencode(query, quote_via=quote)}" if query else uri


def parse_amount(text: str, what: str = "amount") -> int:
    """A positive whole number of the smallest unit."""
    value = whole_number(text)
    if value is None:
        raise UsageError(f"{what}: expected a whole number ≥ 1 (digits 0-9), got {text!r}")
    if value < 1:
        raise UsageError(f"{what}: expected a whole number ≥ 1, got {value}")
    return value


def parse_payment_uri(text: str) -> PaymentRequest:
    """The request in a ``tangle:`` URI; a clear error for anything else.

    Raises:
        UsageError: not a tangle: URI, an address failing its checksum, a bad amount or an
            unknown parameter.
    """
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() != SCHEME:
        raise UsageError(f"payment request: expected {SCHEME}:<address>?amount=N, got {text!r}")
    address_text, _, query = rest.partition("?")
    address = parse_address(address_text)
    fields = parse_qs(query, keep_blank_values=True, strict_parsing=False) if query else {}
    unknown = set(fields) - {"amount", "label"}
    if unknown:
        raise UsageError(f"payment request: unknown parameter {sorted(unknown)[0]!r}")
    for name, values in fields.items():
        if len(values) != 1:
            raise UsageError(f"payment request: {name} given {len(values)} times")
    amount = None
    if "amount" in fields:
        amount = parse_amount(fields["amount"][0], "payment request amount")
    label = fields["label"][0] if "label" in fields else None
    return PaymentRequest(address, amount, label)


def parse_address(text: str) -> Address:
    """A ``tgl1…`` address; the error says what is wrong with a mistyped one."""
    try:
        return decode_address(text.strip())
    except AddressError as exc:
        raise UsageError(f"invalid address: {exc}") from None
