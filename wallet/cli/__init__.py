"""The ``tangle-wallet`` command (docs/WALLET.md). The only wallet package that prints or
exits.

- :mod:`~wallet.cli.parser`: the commands and their arguments;
- :mod:`~wallet.cli.context`: what a handler gets (arguments, output, wallet, password);
- :mod:`~wallet.cli.setup`: ``init``, ``restore`` (the new wallet's files, the scan),
  ``address``, ``check-address``;
- :mod:`~wallet.cli.payments`: ``send``, ``consolidate``, ``faucet``, ``request``,
  ``balance``, ``history``, ``status``;
- :mod:`~wallet.cli.fleet`: ``fleet``, ``topup``, ``policy``, ``autotopup``;
- :mod:`~wallet.cli.meter`: ``pay-meter``;
- :mod:`~wallet.cli.demo`: ``demo``;
- :mod:`~wallet.cli.render`: text or ``--json``, and every error as one line (or an
  ``{"error": …}`` object) and its exit code: no traceback for a user mistake.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

import nacl.exceptions

from wallet.cli import render
from wallet.cli.context import Context
from wallet.cli.parser import build_parser
from wallet.errors import KdfFailed, StateError
from wallet.ops import STATE_FILE

__all__ = ["build_parser", "main"]


async def _run(ctx: Context) -> int:
    try:
        code: int = await ctx.args.handler(ctx)
        return code
    finally:
        await ctx.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code."""
    args = build_parser().parse_args(argv)
    ctx = Context(args)
    try:
        try:
            return asyncio.run(_run(ctx))
        # The backstop boundary for foreign errors the modules below did not map.
        except sqlite3.Error as exc:  # a state file: locked, damaged, not a database
            raise StateError(ctx.directory / STATE_FILE, str(exc)) from None
        except nacl.exceptions.CryptoError as exc:  # libsodium (argon2id memory, limits)
            raise KdfFailed(str(exc) or type(exc).__name__) from None
    except KeyboardInterrupt:
        render.report_interrupted()
        return render.EXIT_INTERRUPTED
    except Exception as exc:
        code = render.exit_code_of(exc)
        if code is None:
            raise  # a bug: its traceback is what to report
        render.report(exc, code, as_json=args.json)
        return code
