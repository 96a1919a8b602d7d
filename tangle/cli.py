"""The ``tangle`` command. The only place in the package that prints or exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tangle import __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _difficulty(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 32:
        raise argparse.ArgumentTypeError(f"expected 0..32 bits for a demo, got {value}")
    return value


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"expected 0..60 seconds, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tangle", description="A feeless micropayment network for machines."
    )
    parser.add_argument("--version", action="version", version=f"tangle {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="devices paying each other on an in-process tangle (Ctrl-C stops it)"
    )
    demo.add_argument("--rounds", type=_positive_int, default=40, help="rounds (default 40)")
    demo.add_argument(
        "--delay", type=_delay, default=0.25, help="seconds between rounds (default 0.25)"
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument(
        "--difficulty", type=_difficulty, default=12, help="base PoW bits (default 12)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from tangle import demo

        try:
            demo.run(
                lambda line: print(line, flush=True),
                rounds=args.rounds,
                delay=args.delay,
                seed=args.seed,
                base_difficulty=args.difficulty,
            )
        except KeyboardInterrupt:
            print("\ninterrupted: demo stopped cleanly", flush=True)
        return 0
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this


if __name__ == "__main__":
    sys.exit(main())
