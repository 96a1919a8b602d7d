"""The ``tangle-wallet`` command line: every command, its arguments and its handler.

Each subcommand sets ``handler`` (an ``async def handler(ctx) -> int``) with
``set_defaults``. The global options may also follow the command
(``tangle-wallet balance --json``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tangle import __version__
from wallet.cli.context import DEFAULT_DIR, ENV_DIR, ENV_KDF, ENV_NODE, Context
from wallet.cli.demo import cmd_demo
from wallet.cli.fleet import (
    cmd_autotopup,
    cmd_fleet_add,
    cmd_fleet_list,
    cmd_policy_list,
    cmd_policy_set,
    cmd_topup,
)
from wallet.cli.meter import cmd_pay_meter
from wallet.cli.payments import (
    cmd_balance,
    cmd_consolidate,
    cmd_faucet,
    cmd_history,
    cmd_request,
    cmd_send,
    cmd_status,
)
from wallet.cli.render import PROG
from wallet.cli.setup import cmd_address, cmd_check_address, cmd_init, cmd_restore
from wallet.client import DEFAULT_NODE, DEFAULT_TIMEOUT
from wallet.keystore import DEFAULT_KDF, KDF_PRESETS
from wallet.uri import whole_arg

Handler = Callable[[Context], Coroutine[Any, Any, int]]
Commands = Any
"""What ``add_subparsers`` returns (argparse's private ``_SubParsersAction``)."""


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes too (``tangle-wallet balance --json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("--wallet-dir", default=argparse.SUPPRESS)
    common.add_argument("--node", default=argparse.SUPPRESS)
    common.add_argument("--timeout-node", type=float, default=argparse.SUPPRESS)
    return common


def _wallet_commands(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Setting up, addresses, paying and looking."""

    def add(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, help=help, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    check = add("check-address", cmd_check_address, "verify an address's checksum")
    check.add_argument("address", help="a tgl1… address")

    meter = add("pay-meter", cmd_pay_meter, "pay a seller per kWh as meter readings arrive")
    meter.description = (
        "Read cumulative meter readings (Wh), one a line: 'WH' or '2026-11-22T10:00:00Z,WH'. "
        "Each time EVERY whole kWh are complete, post the reading as a data transaction and "
        "pay units × price, referencing it. The first reading is the baseline unless "
        "--start-wh is given."
    )
    _meter_arguments(meter)

    for name, handler, what in (
        ("init", cmd_init, "create a new wallet and show its backup line"),
        ("restore", cmd_restore, "recreate a wallet from its backup line"),
    ):
        sub = add(name, handler, what)
        sub.add_argument(
            "--kdf",
            choices=sorted(KDF_PRESETS),
            help=f"password hashing cost (default {DEFAULT_KDF}, or ${ENV_KDF})",
        )
    init = commands.choices["init"]
    init.add_argument("--backup", metavar="FILE", help="write the backup line to FILE (0600)")
    restore = commands.choices["restore"]
    restore.add_argument("--from-file", metavar="FILE", help="read the backup line from FILE")
    restore.add_argument(
        "--addresses", type=whole_arg, default=1, help="derive this many addresses"
    )
    restore.add_argument("--scan", action="store_true", help="also find used addresses on the node")

    address = add("address", cmd_address, "list addresses, or derive a new one")
    address.add_argument("--new", action="store_true", help="derive the next address")
    address.add_argument("--label", help="label for the new (or --index) address")
    address.add_argument("--index", type=whole_arg, help="the address to label")

    add("balance", cmd_balance, "confirmed and pending balance per address")
    history = add("history", cmd_history, "payments sent, with their status")
    history.add_argument("--limit", type=whole_arg, help="only the latest N")
    status = add("status", cmd_status, "a transaction's status and advice")
    status.add_argument("txid")

    for name, handler, what in (
        ("send", cmd_send, "pay an address (or a tangle: payment request)"),
        ("consolidate", cmd_consolidate, "sweep each address's coins to the primary address"),
        ("topup", cmd_topup, "pay fleet devices: NAME AMOUNT or --file fleet.csv"),
    ):
        sub = add(name, handler, what)
        sub.add_argument("--wait", action="store_true", help="until confirmed (promote, reattach)")
        sub.add_argument("--timeout", type=float, default=120.0, help="for --wait (seconds)")
    send = commands.choices["send"]
    send.add_argument("target", metavar="ADDRESS", help="tgl1… address or tangle:… request")
    send.add_argument("amount", metavar="AMOUNT", nargs="?")
    send.add_argument("--idempotency-key", metavar="K", help="a retry with K never pays twice")

    faucet = add("faucet", cmd_faucet, "dev networks: have the node's faucet pay you")
    faucet.add_argument("amount")
    faucet.add_argument("--index", type=whole_arg, default=0, help="address to fund (default 0)")

    demo = add("demo", cmd_demo, "a devnet where machines pay per kWh and per KiB (make demo)")
    demo.add_argument("--nodes", type=int, default=3, help="devnet nodes (default 3)")
    demo.add_argument("--base-port", type=int, default=14265, help="first API port")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    demo.add_argument("--data-dir", type=Path, help="devnet data (default: a temporary dir)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")

    request = add("request", cmd_request, "a payment request URI and its QR code")
    request.add_argument("address", nargs="?", help="default: the primary address")
    request.add_argument("--amount")
    request.add_argument("--label")
    request.add_argument("--no-qr", action="store_true")


def _meter_arguments(cmd: argparse.ArgumentParser) -> None:
    """The ``pay-meter`` options (``--node`` and ``--json`` are the wallet's own)."""
    cmd.add_argument("--to", required=True, metavar="ADDRESS", help="the seller's tgl1… address")
    cmd.add_argument(
        "--price-per-kwh",
        required=True,
        type=whole_arg,
        metavar="P",
        help="smallest units per kWh (an integer ≥ 1)",
    )
    cmd.add_argument(
        "--source", required=True, metavar="FILE", help="readings file, or - for stdin"
    )
    cmd.add_argument("--every", type=whole_arg, default=1, metavar="N", help="pay every N kWh (1)")
    cmd.add_argument("--meter-id", default="meter", help="the meter's name in each reading")
    cmd.add_argument("--start-wh", type=whole_arg, default=None, help="Wh already paid for")
    cmd.add_argument(
        "--key-file",
        type=Path,
        metavar="F",
        help="pay with key 0 of the 32-byte hex seed in F instead of the wallet's primary",
    )


def _fleet_commands(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Devices, top-ups, policies and the autotopup daemon."""
    fleet = commands.add_parser("fleet", help="devices the wallet pays", parents=[common])
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    add = fleet_commands.add_parser("add", help="add or move a device", parents=[common])
    add.add_argument("name")
    add.add_argument("address")
    add.set_defaults(handler=cmd_fleet_add)
    fleet_commands.add_parser("list", help="devices with balances", parents=[common]).set_defaults(
        handler=cmd_fleet_list
    )

    topup = commands.choices["topup"]
    topup.add_argument("name", nargs="?")
    topup.add_argument("amount", nargs="?")
    topup.add_argument("--file", metavar="CSV", help="rows name_or_address,amount[,key]")
    topup.add_argument("--idempotency-key", metavar="K")
    topup.add_argument(
        "--batch-key",
        metavar="TAG",
        help="key prefix for rows without a key (default: file:<the file's name>)",
    )

    policy = commands.add_parser("policy", help="top-up rules per device", parents=[common])
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    pset = policy_commands.add_parser("set", help="set a device's rule", parents=[common])
    pset.add_argument("name")
    pset.add_argument("--min", type=whole_arg, required=True)
    pset.add_argument("--target", type=whole_arg, required=True)
    pset.add_argument("--daily-cap", type=whole_arg)
    pset.set_defaults(handler=cmd_policy_set)
    policy_commands.add_parser("list", help="the rules", parents=[common]).set_defaults(
        handler=cmd_policy_list
    )

    auto = commands.add_parser(
        "autotopup", help="keep devices above their minimum", parents=[common]
    )
    auto.add_argument("--once", action="store_true", help="one pass, then exit")
    auto.add_argument("--interval", type=float, default=30.0, help="poll every S seconds")
    auto.set_defaults(handler=cmd_autotopup)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Wallet for the tangle micropayment network."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--wallet-dir",
        default=os.environ.get(ENV_DIR, DEFAULT_DIR),
        help=f"where the keystore and state live (default {DEFAULT_DIR}, or ${ENV_DIR})",
    )
    parser.add_argument(
        "--node",
        default=os.environ.get(ENV_NODE, DEFAULT_NODE),
        help=f"the node's API (default {DEFAULT_NODE}, or ${ENV_NODE})",
    )
    parser.add_argument(
        "--timeout-node",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for each node answer",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    _wallet_commands(commands, common)
    _fleet_commands(commands, common)
    return parser
