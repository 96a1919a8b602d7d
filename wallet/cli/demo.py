"""``tangle-wallet demo`` (``make demo``): devices paying each other through the wallet on
a devnet of real nodes. The one wallet module that may use :mod:`tangle.demo`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from wallet.cli.context import Context
from wallet.errors import UsageError

MAX_NODES = 16


async def cmd_demo(ctx: Context) -> int:
    """Exit 0 when every payment was made and checked out, 1 when some were not."""
    from tangle.demo import DemoError  # the node package: only when the demo runs
    from tangle.demo.machines import run_demo

    args = ctx.args
    if not 1 <= args.nodes <= MAX_NODES:
        raise UsageError(f"--nodes: expected 1 to {MAX_NODES}, got {args.nodes}")
    if args.duration <= 0:
        raise UsageError(f"--duration: expected seconds > 0, got {args.duration}")

    def emit(line: str) -> None:
        ctx.out(line)
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="tangle-demo-") as tmp:
        try:
            problems = await run_demo(
                emit,
                nodes=args.nodes,
                base_port=args.base_port,
                data_dir=args.data_dir or Path(tmp),
                duration=args.duration,
                seed=args.seed,
            )
        except (DemoError, ValueError) as exc:
            raise UsageError(f"demo: {exc}") from None
    return 0 if problems == 0 else 1
