"""The wallet's errors: each says what was wrong in words a device owner can act on.

The CLI prints ``str(error)`` and exits with ``exit_code``; no traceback for a user
mistake. Library callers catch :class:`WalletError`.
"""

from __future__ import annotations

from typing import Any


class WalletError(Exception):
    """Base of every wallet error."""

    exit_code = 1


class UsageError(WalletError):
    """A bad argument, file or row: the user can fix it."""

    exit_code = 2


class NodeUnreachable(WalletError):
    """No answer from the node at all."""

    exit_code = 3

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the node at {url}: {reason}")
        self.url = url


class NodeError(WalletError):
    """The node answered with an error object: ``{"error": {"code", "message", ...}}``."""

    exit_code = 4

    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any]) -> None:
        super().__init__(f"the node refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class InsufficientFunds(WalletError):
    """Nothing was issued: the wallet holds less than the payment needs."""

    exit_code = 5

    def __init__(self, available: int, needed: int, where: str = "the wallet") -> None:
        super().__init__(
            f"insufficient funds: {where} has {available} available, the payment needs "
            f"{needed} (short by {needed - available}); nothing was sent"
        )
        self.available = available
        self.needed = needed


class SendFailed(WalletError):
    """A payment could not be placed on the tangle after its retries."""

    exit_code = 6
