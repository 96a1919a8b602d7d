"""The ``tangle`` command. The only place in the package that prints or exits."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tangle import __version__

if TYPE_CHECKING:
    import asyncio


def _bounded(
    kind: type[int] | type[float], what: str, low: float, high: float, bounds: str
) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` in ``low..high``; ``bounds`` says so."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {bounds}, got {value}")
        return value

    return parse


_positive_int = _bounded(int, "a whole number", 1, float("inf"), "at least 1")
_difficulty = _bounded(int, "a whole number", 0, 32, "0..32 bits for a demo")
_delay = _bounded(float, "seconds", 0, 60, "0..60 seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tangle", description="A feeless micropayment network for machines."
    )
    parser.add_argument("--version", action="version", version=f"tangle {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="a devnet of real nodes with devices paying each other (Ctrl-C stops it)"
    )
    demo.add_argument(
        "--in-process", action="store_true", help="the core alone, in one process, no network"
    )
    demo.add_argument("--nodes", type=_positive_int, default=3, help="devnet nodes (default 3)")
    demo.add_argument("--base-port", type=int, default=14265, help="first API port")
    demo.add_argument("--duration", type=_delay, default=30.0, help="seconds (default 30)")
    demo.add_argument("--data-dir", type=Path, help="devnet data (default: a temporary dir)")
    demo.add_argument("--rounds", type=_positive_int, default=40, help="rounds (default 40)")
    demo.add_argument(
        "--delay", type=_delay, default=0.25, help="seconds between rounds (default 0.25)"
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument(
        "--difficulty", type=_difficulty, default=12, help="base PoW bits (default 12)"
    )
    devnet = commands.add_parser(
        "devnet", help="run N wired nodes with a dev genesis and faucets (Ctrl-C stops them)"
    )
    devnet.add_argument("--nodes", type=_positive_int, default=3)
    devnet.add_argument("--base-port", type=int, default=14265)
    devnet.add_argument("--data-dir", type=Path, default=Path("devnet-data"))
    genesis = commands.add_parser("genesis", help="write the genesis file of a new network")
    genesis.add_argument("--network-id", required=True, help="e.g. 0x74676c6d61696e31")
    genesis.add_argument(
        "--base-difficulty", type=int, default=16, help="PoW base bits (default 16)"
    )
    genesis.add_argument(
        "--alloc",
        action="append",
        required=True,
        metavar="ADDRESS=AMOUNT",
        help="an allocation (repeat for more)",
    )
    genesis.add_argument("--timestamp", type=int, default=0, help="ms since the epoch")
    genesis.add_argument("--out", type=Path, required=True, help="the file to write")

    node = commands.add_parser("node", help="run a peer node (Ctrl-C or SIGTERM stops it)")
    node.add_argument("--config", type=Path, help="a TOML file of settings")
    node.add_argument("--data-dir", type=Path, help="where the database lives")
    node.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    node.add_argument("--api-port", type=int, help="HTTP API port (default 14265; 0: any)")
    node.add_argument("--peer", action="append", dest="peers", metavar="URL", help="a peer")
    node.add_argument("--dev", action="store_true", default=None, help="a dev network")
    node.add_argument("--network-id", help="network id (default: the dev network)")
    node.add_argument("--base-difficulty", type=int, help="PoW base bits (dev default 8)")
    node.add_argument("--faucet-index", type=int, help="dev faucet key to pay from (0..15)")
    node.add_argument(
        "--prune-age", type=float, help="seconds of history kept whole (default 3600; 0: off)"
    )
    node.add_argument(
        "--max-transactions", type=int, help="transactions kept at most (default 50000)"
    )
    node.add_argument(
        "--max-in-flight",
        type=int,
        help="submissions admitted at once; past that the API answers 503 (default 1024)",
    )
    node.add_argument(
        "--tip-wait",
        type=float,
        help="seconds a payment may stay unapproved before the node approves it (default 0.1)",
    )
    node.add_argument("--prune-interval", type=float, help="seconds between pruning checks")
    node.add_argument(
        "--snapshot-from", metavar="URL", help="start an empty node from this peer's snapshot"
    )
    node.add_argument("--genesis", metavar="FILE", help="the network's genesis file (non-dev)")
    node.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    node.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=os.environ.get("TANGLE_EVENT_LOOP", "auto"),
        help="auto: uvloop when installed (pip install 'tangle[fast]'), else asyncio's",
    )
    return parser


EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the node runs on (None: asyncio's own).

    Raises:
        ConfigError: uvloop was asked for and is not installed.
    """
    from tangle.node.errors import ConfigError

    if choice not in EVENT_LOOPS:  # TANGLE_EVENT_LOOP is not checked by argparse
        raise ConfigError(
            f"event loop: expected one of {', '.join(EVENT_LOOPS)}, got {choice!r}"
            " (from --event-loop or TANGLE_EVENT_LOOP)"
        )
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "--event-loop uvloop: uvloop is not installed (pip install 'tangle[fast]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo" and args.in_process:
        from tangle.demo import scenario as demo

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
    if args.command == "demo":
        return run_network_demo(args)
    if args.command == "devnet":
        return run_devnet(args)
    if args.command == "node":
        return run_node(args)
    if args.command == "genesis":
        return write_genesis(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this


def run_network_demo(args: argparse.Namespace) -> int:
    import asyncio
    import tempfile

    from tangle.demo.network import run_demo
    from tangle.node.errors import DevnetError

    def emit(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="tangle-demo-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        try:
            asyncio.run(
                run_demo(
                    emit,
                    nodes=args.nodes,
                    base_port=args.base_port,
                    data_dir=data_dir,
                    duration=args.duration,
                    seed=args.seed,
                )
            )
        except KeyboardInterrupt:
            print("\ninterrupted: demo and devnet stopped cleanly", flush=True)
        except (DevnetError, ValueError) as exc:
            print(f"tangle demo: {exc}", file=sys.stderr)
            return 1
    return 0


def run_devnet(args: argparse.Namespace) -> int:
    import signal
    import threading

    from tangle.node.devnet import start_devnet
    from tangle.node.errors import DevnetError

    try:
        devnet = start_devnet(args.data_dir, args.nodes, args.base_port)
    except (DevnetError, ValueError) as exc:
        print(f"tangle devnet: {exc}", file=sys.stderr)
        return 1
    print(f"{args.nodes} nodes up; {args.data_dir / 'devnet.json'}:", flush=True)
    for node in devnet.nodes:
        print(f"  node {node.index}: {node.api}  (log {node.log})", flush=True)
    print("Ctrl-C stops them all.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            dead = [n for n in devnet.nodes if not n.running]
            if dead:
                print(f"node {dead[0].index} exited:\n{dead[0].tail()}", file=sys.stderr)
                break
    except KeyboardInterrupt:
        pass
    codes = devnet.stop()
    print(f"stopped (exit codes {codes})", flush=True)
    return 0 if all(c == 0 for c in codes) else 1


def write_genesis(args: argparse.Namespace) -> int:
    """``tangle genesis``: allocations checked, the file written, its genesis id printed."""
    import json

    from tangle.address import decode_address
    from tangle.errors import TangleError
    from tangle.node.genesis import GenesisFile

    allocations = {}
    try:
        network_id = int(args.network_id, 0)
        for item in args.alloc:
            address, sep, amount = item.partition("=")
            if not sep or not amount.strip().isdigit():
                raise ValueError(f"--alloc: expected ADDRESS=AMOUNT, got {item!r}")
            key = decode_address(address.strip())
            if key in allocations:
                raise ValueError(f"--alloc: {address.strip()} appears twice")
            allocations[key] = int(amount)
        spec = GenesisFile(network_id, args.base_difficulty, allocations, args.timestamp)
        body = spec.to_json()
    except (ValueError, TangleError) as exc:
        print(f"tangle genesis: {exc}", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"tangle genesis: {args.out} exists; not overwriting it", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(body, indent=2) + "\n")
    print(f"genesis {body['genesis_id']} of network {body['network_id']} written to {args.out}")
    return 0


def run_node(args: argparse.Namespace) -> int:
    import asyncio

    from tangle.node.config import environment, load_config
    from tangle.node.errors import ConfigError, Rejected, StorageError
    from tangle.node.server import configure_logging, serve

    try:
        config = load_config(
            args.config,
            environment(),
            {
                "data_dir": args.data_dir,
                "host": args.host,
                "api_port": args.api_port,
                "peers": args.peers,
                "dev": args.dev,
                "network_id": args.network_id,
                "base_difficulty": args.base_difficulty,
                "faucet_index": args.faucet_index,
                "prune_age": args.prune_age,
                "max_transactions": args.max_transactions,
                "max_in_flight": args.max_in_flight,
                "tip_wait": args.tip_wait,
                "prune_interval": args.prune_interval,
                "snapshot_from": args.snapshot_from,
                "genesis": args.genesis,
            },
        )
        factory = loop_factory(args.event_loop)
    except ConfigError as exc:
        print(f"tangle node: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config))
    except (ConfigError, Rejected, StorageError) as exc:
        print(f"tangle node: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
