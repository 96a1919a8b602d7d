"""The wallet's one exception tree, rooted in the core's :class:`~tangle.errors.TangleError`.

::

    TangleError                         tangle.errors: the root of the whole project
      WalletError                       exit 1  anything the wallet raises
        FileAccessError                 exit 1  a file or folder it cannot read or write
          StateError                    exit 1  the state file (SQLite): locked, damaged
        UsageError                      exit 2  a bad argument, file, row or address
          BadFile                               a top-up file: every bad row, by line
          MeterError                            a meter reading that cannot be paid for
        NodeUnreachable                 exit 3  no answer from the node at all
        NodeError                       exit 4  the node refused: status, code, message
        MalformedAnswer                 exit 4  the node answered, not in the API's shape
        InsufficientFunds               exit 5  nothing was issued: too little to pay
          SplitFunds                            enough in all, but in no single address
        SendFailed                      exit 6  the payment could not be placed
          DoubleSpend                           a coin it spends is spent already
        WrongPassword                   exit 7  the keystore does not open
        AuditError                      exit 7  a transaction read back is not what it claims
        MeterPaymentInvalid             exit 7  a meter payment that does not check out
        KeystoreCorrupt                 exit 8  the keystore file is damaged
        KdfFailed                       exit 8  libsodium's password hashing failed
        NotConfirmed                    exit 9  ``--wait`` ran out of time
        PaymentError                    exit 1  an x402 payment, on the client's side
          BudgetExceeded                        over a budget; nothing was paid
          PaymentRefused                        the server refused the payment (``code``)
          PaymentPending                        still pending; retry with the same payment
          SellerUnreachable                     no answer from the server that sells
        VoucherRefused                  exit 1  a stream voucher the server will not take

Foreign errors become these at one boundary each: :mod:`wallet.client` maps aiohttp's
and the OS's network errors and malformed answers (:class:`tangle.schema.SchemaError`)
of the node, :mod:`wallet.x402.client` those of the seller's server,
:mod:`wallet.state` SQLite's, :mod:`wallet.keystore` the keystore file's and libsodium's,
:mod:`wallet.x402.stores` those of the record of consumed payments.

Every error keeps its raw constructor arguments in ``args`` and builds its message in
``__str__`` (expected against actual, in words a device owner can act on), so it pickles
and unpickles to an equal error. ``exit_code`` is what ``tangle-wallet`` exits with
(:mod:`wallet.cli.render` applies it); library callers catch :class:`WalletError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tangle.errors import TangleError
from tangle.transaction import OutputId

MALFORMED_ANSWER = "malformed_answer"
"""The ``code`` the wallet gives an answer that is not of the documented shape."""


class WalletError(TangleError):
    """Base of every wallet error; ``str()`` is the whole message."""

    exit_code = 1


# -- files ------------------------------------------------------------------------------


class FileAccessError(WalletError):
    """A file or folder the wallet cannot read or write (``reason``: the OS's words)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class StateError(FileAccessError):
    """The state file (SQLite) failed: locked by another program, damaged, not SQLite."""

    def __str__(self) -> str:
        return f"wallet state {self.path}: {self.reason}"


# -- the user's input --------------------------------------------------------------------


class UsageError(WalletError):
    """A bad argument, file or row: the user can fix it."""

    exit_code = 2


class BadFile(UsageError):
    """Some rows of a top-up file are wrong; nothing was paid."""

    def __init__(self, path: str, problems: Sequence[tuple[int, str]]) -> None:
        super().__init__(path, list(problems))
        self.path = path
        self.problems = list(problems)

    def __str__(self) -> str:
        count = len(self.problems)
        lines = "\n".join(f"  line {line}: {what}" for line, what in self.problems)
        return f"{self.path}: {count} bad row{'s' if count > 1 else ''}, nothing was paid:\n{lines}"


class MeterError(UsageError):
    """A reading that cannot be paid for: malformed, going backwards, out of range."""


# -- the node ----------------------------------------------------------------------------


class NodeUnreachable(WalletError):
    """No answer from the node at all."""

    exit_code = 3

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot reach the node at {self.url}: {self.reason}"


class NodeError(WalletError):
    """The node answered with an error object: ``{"error": {"code", "message", ...}}``.

    ``code`` is a :class:`tangle.schema.ErrorCode` value (or one this wallet does not
    know yet); ``extra`` holds the error object's other fields. Decide from these, never
    from ``message``.
    """

    exit_code = 4

    def __init__(
        self, status: int, code: str, message: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(status, code, message, dict(extra or {}))
        self.status = status
        self.code = code
        self.message = message
        self.extra: dict[str, Any] = dict(extra or {})

    def __str__(self) -> str:
        return f"the node refused ({self.status} {self.code}): {self.message}"


class MalformedAnswer(WalletError):
    """The node answered, but not in the shape its API documents (docs/NODE.md)."""

    exit_code = 4
    code = MALFORMED_ANSWER

    def __init__(self, what: str, detail: str, status: int = 200) -> None:
        super().__init__(what, detail, status)
        self.what = what
        self.detail = detail
        self.status = status

    def __str__(self) -> str:
        return f"the node's answer to {self.what} ({self.status}) is malformed: {self.detail}"


# -- paying ------------------------------------------------------------------------------


class InsufficientFunds(WalletError):
    """Nothing was issued: the wallet holds less than the payment needs."""

    exit_code = 5

    def __init__(self, available: int, needed: int, where: str = "the wallet") -> None:
        super().__init__(available, needed, where)
        self.available = available
        self.needed = needed
        self.where = where

    def __str__(self) -> str:
        return (
            f"insufficient funds: {self.where} has {self.available} available, the payment "
            f"needs {self.needed} (short by {self.needed - self.available}); nothing was sent"
        )


class SplitFunds(InsufficientFunds):
    """The wallet holds enough, but no single address does (one address per transaction)."""

    def __init__(self, largest: int, total: int, needed: int) -> None:
        super().__init__(largest, needed)
        self.args = (largest, total, needed)
        self.total = total

    def __str__(self) -> str:
        return (
            f"no single address holds {self.needed}: the largest has {self.available}, all "
            f"addresses together hold {self.total}. A transaction spends from one address; "
            "run `tangle-wallet consolidate`, then send again. Nothing was sent"
        )


class SendFailed(WalletError):
    """A payment could not be placed on the tangle after its retries."""

    exit_code = 6


class DoubleSpend(SendFailed):
    """The node says an input of the payment is spent already: nothing was issued."""

    def __init__(self, inputs: Sequence[OutputId], cause: NodeError) -> None:
        super().__init__(list(inputs), cause)
        self.inputs = list(inputs)
        self.cause = cause

    def __str__(self) -> str:
        return (
            "the node refused the payment: a coin it spends is spent already "
            f"({self.cause.code}: {self.cause.message}); nothing was sent"
        )


class NotConfirmed(WalletError):
    """``--wait`` ran out of time; the payment is still pending (or orphaned)."""

    exit_code = 9

    def __init__(self, tx_id: str, tx_status: str, waited: float) -> None:
        super().__init__(tx_id, tx_status, waited)
        self.tx_id = tx_id
        self.tx_status = tx_status
        """The transaction's status (``status`` in an error is the HTTP status)."""
        self.waited = waited

    def __str__(self) -> str:
        return (
            f"transaction {self.tx_id} is still {self.tx_status} after {self.waited:g} s, not "
            "confirmed; check later with `tangle-wallet status`"
        )


# -- the keystore ------------------------------------------------------------------------


class WrongPassword(WalletError):
    exit_code = 7

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f"wrong password for keystore {self.path} (or the file was altered)"


class KeystoreCorrupt(WalletError):
    exit_code = 8

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(path, what)
        self.path = path
        self.what = what

    def __str__(self) -> str:
        return f"keystore {self.path} is damaged: {self.what}"


class KdfFailed(WalletError):
    """libsodium's password hashing failed (the keystore-damaged exit code)."""

    exit_code = 8

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"the password hashing failed: {self.reason}"


# -- audits and machine payments ---------------------------------------------------------


class AuditError(WalletError):
    """A transaction read back from the node is not what it claims to be."""

    exit_code = 7


class MeterPaymentInvalid(WalletError):
    """A meter payment that does not check out; the message names the first problem."""

    exit_code = 7


class PaymentError(WalletError):
    """An x402 payment went wrong on the client's side."""


class BudgetExceeded(PaymentError):
    """The price is over the per-request or (with ``total``) the total budget; nothing
    was paid."""

    def __init__(self, price: int, budget: int, total: int | None = None) -> None:
        super().__init__(price, budget, total)
        self.price = price
        self.budget = budget
        self.total = total

    def __str__(self) -> str:
        if self.total is None:
            return (
                f"price {self.price} is over the per-request budget {self.budget}; nothing was paid"
            )
        return (
            f"price {self.price} would take the total to {self.total}, over the budget "
            f"{self.budget}; nothing was paid"
        )


class PaymentRefused(PaymentError):
    """The server refused the payment presented (``code`` says why); do not pay again."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"the server refused the payment ({self.code}): {self.message}"


class PaymentPending(PaymentError):
    """The payment did not settle within the wait; retry later with the same payment."""

    def __init__(self, tx_id: str) -> None:
        super().__init__(tx_id)
        self.tx_id = tx_id

    def __str__(self) -> str:
        return f"payment {self.tx_id} is still pending; retry with the same payment"


class SellerUnreachable(PaymentError):
    """No answer from the server that sells (aiohttp's or the OS's words in ``reason``)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot reach the seller at {self.url}: {self.reason}"


class VoucherRefused(WalletError):
    """A voucher the server will not accept; ``code`` names the rule it broke."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"voucher refused ({self.code}): {self.message}"
