"""How ``tangle-wallet`` shows things: text or ``--json``, and errors as exit codes.

This is the one place that maps an error to the exit code and the line (or JSON object)
the user sees (docs/WALLET.md): a :class:`~wallet.errors.WalletError` exits with its
``exit_code``, a mistyped address with 2, a file or folder the OS refuses with 1; no
traceback for any of them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from tangle.errors import AddressError
from wallet.errors import WalletError
from wallet.ops import Outcome
from wallet.state import Batch, Policy

PROG = "tangle-wallet"
EXIT_USER_ERROR = 2
"""A bad argument (argparse's code too), file, row or address."""
EXIT_FILE_ERROR = 1
"""A file or folder the wallet cannot read or write."""
EXIT_INTERRUPTED = 130
ERROR_DETAILS = ("available", "needed", "status", "code")
"""Attributes of an error that ``--json`` adds to its error object when it has them."""


def output(data: Any, text: str | Sequence[str], *, as_json: bool) -> str:
    """``data`` as indented JSON, or ``text`` (lines joined)."""
    if as_json:
        return json.dumps(data, indent=2)
    return text if isinstance(text, str) else "\n".join(text)


def utc(moment: float, layout: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return time.strftime(layout, time.gmtime(moment))


# -- payments ---------------------------------------------------------------------------


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "batch": batch.id,
        "kind": batch.kind,
        "from_index": batch.source_idx,
        "tx_id": batch.tx_id,
        "status": batch.status,
        "note": batch.note,
        "created": utc(batch.created),
        "payments": [
            {"to": p.recipient, "amount": p.amount, "key": p.key, "device": p.device}
            for p in batch.payments
        ],
        "tx_ids": list(batch.tx_ids),
        "promotions": list(batch.promotions),
    }


def batch_line(batch: Batch) -> str:
    when = utc(batch.created, "%Y-%m-%d %H:%M:%S")
    total = sum(p.amount for p in batch.payments)
    first = batch.payments[0].device or batch.payments[0].recipient if batch.payments else "-"
    more = f" +{len(batch.payments) - 1} more" if len(batch.payments) > 1 else ""
    tx = (batch.tx_id or "-")[:16]
    return f"{when} {batch.kind:<11} {total:>10} to {first}{more}  {batch.status:<11} {tx}"


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {**batch_json(outcome.batch), "already_sent": outcome.reused}


def send_lines(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        b = o.batch
        total = sum(p.amount for p in b.payments)
        verb = "already sent" if o.reused else "sent"
        lines.append(f"{verb} {total} in {len(b.payments)} payment(s): {b.tx_id} ({b.status})")
    return lines


def progress_line(tx_id: str, meta: dict[str, Any], elapsed: float) -> str:
    """One line of ``--wait`` progress from a transaction's ``metadata``."""
    return (
        f"  {tx_id[:16]} {meta['status']:<10} confidence {meta['confidence']:.2f} "
        f"weight {meta['cumulative_weight']} ({elapsed:.0f} s)"
    )


# -- the fleet --------------------------------------------------------------------------


def policy_json(p: Policy) -> dict[str, Any]:
    return {"name": p.name, "min": p.min, "target": p.target, "daily_cap": p.daily_cap}


def policy_line(p: Policy) -> str:
    cap = "no daily cap" if p.daily_cap is None else f"at most {p.daily_cap} a day (UTC)"
    return f"{p.name}: below {p.min}, top up to {p.target}, {cap}"


# -- errors -----------------------------------------------------------------------------


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code for an error the user can act on; None for anything else (a bug,
    which keeps its traceback)."""
    if isinstance(exc, WalletError):
        return exc.exit_code
    if isinstance(exc, AddressError):
        return EXIT_USER_ERROR
    if isinstance(exc, OSError):  # a file or folder the wallet cannot read or write
        return EXIT_FILE_ERROR
    return None


def error_message(exc: BaseException) -> str:
    what = "invalid address: " if isinstance(exc, AddressError) else ""
    return f"{what}{exc}"


def error_json(exc: BaseException, code: int) -> str:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "exit_code": code}
    for name in ERROR_DETAILS:
        if hasattr(exc, name):
            error[name] = getattr(exc, name)
    return json.dumps({"error": error})


def report_interrupted() -> None:
    print(f"{PROG}: interrupted", file=sys.stderr)


def report(exc: BaseException, code: int, *, as_json: bool) -> None:
    """The error as ``{"error": …}`` on stdout (``--json``) or one line on stderr."""
    if as_json:
        print(error_json(exc, code))
    else:
        print(f"{PROG}: {error_message(exc)}", file=sys.stderr)
