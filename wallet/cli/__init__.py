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
from collections.abc import Sequence

from wallet.cli import render
from wallet.cli.context import Context
from wallet.cli.parser import build_parser

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
    try:
        return asyncio.run(_run(Context(args)))
    except KeyboardInterrupt:
        render.report_interrupted()
        return render.EXIT_INTERRUPTED
    except Exception as exc:
        code = render.exit_code_of(exc)
        if code is None:
            raise  # a bug: its traceback is what to report
        render.report(exc, code, as_json=args.json)
        return code
