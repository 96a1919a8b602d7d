"""The ``tangle-wallet`` command. The only wallet module that prints or exits."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tangle import __version__
from tangle.address import decode_address, encode_address
from tangle.errors import AddressError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tangle-wallet", description="Wallet for the tangle micropayment network."
    )
    parser.add_argument("--version", action="version", version=f"tangle-wallet {__version__}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check-address", help="verify an address's checksum and show its bytes"
    )
    check.add_argument("address", help="a tgl1… address")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-address":
        try:
            raw = decode_address(args.address.strip())
        except AddressError as exc:
            if args.json:
                print(json.dumps({"valid": False, "error": str(exc)}))
            else:
                print(f"tangle-wallet: invalid address: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        canonical = encode_address(raw)
        if args.json:
            print(json.dumps({"valid": True, "address": canonical, "hex": raw.hex()}))
        else:
            print(f"valid address {canonical}\nhex {raw.hex()}")
        return 0
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this


if __name__ == "__main__":
    sys.exit(main())
