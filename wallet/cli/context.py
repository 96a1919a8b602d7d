"""What every command handler gets: the parsed arguments, output, the wallet, a password."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wallet.cli import render
from wallet.errors import UsageError
from wallet.ops import Wallet

DEFAULT_DIR = "~/.tangle-wallet"
ENV_DIR = "TANGLE_WALLET_DIR"
ENV_NODE = "TANGLE_NODE"
ENV_PASSWORD = "TANGLE_WALLET_PASSWORD"
ENV_KDF = "TANGLE_WALLET_KDF"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class Context:
    """One run of a command: ``out`` is stdout (data), ``err`` stderr (progress, logs)."""

    args: argparse.Namespace
    out: Callable[[str], None] = print
    err: Callable[[str], None] = field(default=_stderr)
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
        """``data`` as JSON with ``--json``, else ``text`` (a line or lines)."""
        self.out(render.output(data, text, as_json=self.json))

    async def close(self) -> None:
        if self._wallet is not None:
            await self._wallet.close()


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
