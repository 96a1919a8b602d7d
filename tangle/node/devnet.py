"""A local network of real node processes (``tangle devnet``), wired to each other.

Node i listens on ``base_port + i``, pays faucet requests from dev faucet key i, and
dials every node before it, so the network is a full mesh. ``DIR/devnet.json`` says
where everything is: ``{"network": ..., "nodes": [{"api": ..., "pid": ..., ...}]}``.
Stopping the devnet sends SIGTERM to every node and waits for each to stop cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tangle.node.errors import DevnetError
from tangle.node.genesis import DEV_FAUCETS, DEV_NETWORK_ID

__all__ = ["Devnet", "DevnetError", "DevnetNode", "free_base_port", "start_devnet"]


@dataclass
class DevnetNode:
    index: int
    api: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.data_dir / "node.log"

    def tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Devnet:
    data_dir: Path
    nodes: list[DevnetNode] = field(default_factory=list)

    @property
    def apis(self) -> list[str]:
        return [n.api for n in self.nodes]

    def describe(self) -> dict[str, Any]:
        return {
            "network": f"{DEV_NETWORK_ID:#x}",
            "nodes": [
                {
                    "api": n.api,
                    "pid": n.process.pid,
                    "data_dir": str(n.data_dir),
                    "faucet_index": n.index,
                    "log": str(n.log),
                }
                for n in self.nodes
            ],
        }

    def stop(self, timeout: float = 15.0) -> list[int]:
        """SIGTERM every node, wait for each; returns their exit codes."""
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        codes = []
        for node in self.nodes:
            try:
                codes.append(node.process.wait(timeout))
            except subprocess.TimeoutExpired:
                node.process.kill()
                codes.append(node.process.wait())
        return codes


def free_base_port(count: int, host: str = "127.0.0.1") -> int:
    """A port with ``count`` consecutive ports after it free on ``host`` (loopback).

    Another process may take one before it is used: callers start quickly.
    """
    import socket

    for base in range(21000, 60000, 97):
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                sockets.append(probe)  # closed below even when bind fails
                probe.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise DevnetError(f"no {count} consecutive free ports on {host}")


def start_devnet(
    data_dir: Path,
    nodes: int = 3,
    base_port: int = 14265,
    host: str = "127.0.0.1",
    extra: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> Devnet:
    """Start ``nodes`` node processes, one after the other once each listens.

    Raises:
        ValueError: a bad node count or port.
        DevnetError: a node exited or did not listen in time (the devnet is stopped).
    """
    if not 1 <= nodes <= DEV_FAUCETS:
        raise ValueError(f"nodes: expected 1..{DEV_FAUCETS}, got {nodes}")
    if not 1024 <= base_port <= 65535 - nodes:
        raise ValueError(f"base port: expected 1024..{65535 - nodes}, got {base_port}")
    data_dir.mkdir(parents=True, exist_ok=True)
    devnet = Devnet(data_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for i in range(nodes):
        node_dir = data_dir / f"node{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "node.json").unlink(missing_ok=True)
        api = f"http://{host}:{base_port + i}"
        peers = [arg for j in range(i) for arg in ("--peer", devnet.nodes[j].api)]
        with (node_dir / "node.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tangle.node",
                    "node",
                    "--dev",
                    "--data-dir",
                    str(node_dir),
                    "--host",
                    host,
                    "--api-port",
                    str(base_port + i),
                    "--faucet-index",
                    str(i),
                    *peers,
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the devnet, which stops the nodes
            )
        devnet.nodes.append(DevnetNode(i, api, node_dir, process))
        # Each node dials the ones before it: wait until it listens before starting the
        # next, so that every first dial finds its peer up (no reconnect backoff to sit out).
        _wait_listening(devnet, devnet.nodes[-1], time.monotonic() + timeout, timeout)
    (data_dir / "devnet.json").write_text(json.dumps(devnet.describe(), indent=2) + "\n")
    return devnet


def _wait_listening(devnet: Devnet, node: DevnetNode, deadline: float, timeout: float) -> None:
    info = node.data_dir / "node.json"
    while True:
        if node.process.poll() is not None:
            devnet.stop()
            raise DevnetError(f"node {node.index} exited:\n{node.tail()}")
        if info.exists() and json.loads(info.read_text() or "{}").get("pid") == node.process.pid:
            return
        if time.monotonic() > deadline:
            devnet.stop()
            raise DevnetError(f"node {node.index} did not listen in {timeout} s:\n{node.tail()}")
        time.sleep(0.05)
