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

__all__ = ["Devnet", "DevnetError", "LocalNode", "free_base_port", "start_devnet"]


@dataclass(eq=False)
class LocalNode:
    """One node process on this machine: the one launcher, for devnets, tests and
    benchmarks. It runs ``python -m tangle.node node --data-dir DIR ARGS...``, logs to
    ``DIR/node.log``, and is up once ``DIR/node.json`` names its pid (the node writes
    that file when it listens, with its real API address: ``--api-port 0`` works)."""

    data_dir: Path
    args: tuple[str, ...] = ()
    """Arguments after ``tangle node --data-dir DIR``."""
    index: int = 0
    """Its place in a devnet (and its dev faucet key)."""
    api: str = ""
    """The API's base URL, known once it listens."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.data_dir / "node.log"

    def spawn(self, *, own_session: bool = False) -> LocalNode:
        """Start the process (not waiting for it to listen; see :meth:`wait_listening`).

        ``own_session``: a process group of its own, so that a Ctrl-C in the terminal
        reaches the launcher, which then stops the node in order.
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "node.json").unlink(missing_ok=True)
            self._popen(own_session)
        except OSError as exc:
            raise DevnetError(f"node {self.index} cannot start in {self.data_dir}: {exc}") from None
        return self

    def _popen(self, own_session: bool) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tangle.node",
                    "node",
                    "--data-dir",
                    str(self.data_dir),
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=own_session,
            )

    def wait_listening(self, timeout: float = 30.0) -> LocalNode:
        """Wait until the node listens; read its API address.

        Raises:
            DevnetError: it exited, or did not listen within ``timeout`` (its log tail).
        """
        assert self.process is not None, "spawn() first"
        info = self.data_dir / "node.json"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DevnetError(
                    f"node {self.index} exited with {self.process.returncode}:\n{self.tail()}"
                )
            try:
                data = json.loads(info.read_text()) if info.exists() else {}
            except json.JSONDecodeError:  # being written
                data = {}
            if data.get("pid") == self.process.pid:
                self.api = str(data["api"])
                return self
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"node {self.index} did not listen in {timeout} s:\n{self.tail()}"
                )
            time.sleep(0.05)

    def start(self, timeout: float = 30.0) -> LocalNode:
        """Spawn and wait until it listens (stopping it if it does not)."""
        self.spawn()
        try:
            return self.wait_listening(timeout)
        except DevnetError:
            self.kill()
            raise

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """SIGTERM, as a service manager would (the node stops cleanly)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the exit code; kill -9 after ``timeout``.

        Raises:
            DevnetError: it ignored SIGTERM for ``timeout`` seconds (it was killed).
        """
        if self.process is None:
            return 0
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DevnetError(
                f"node {self.index} ignored SIGTERM for {timeout} s:\n{self.tail()}"
            ) from None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code (see :meth:`wait`)."""
        self.terminate()
        return self.wait(timeout)

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.running:
            assert self.process is not None
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Devnet:
    data_dir: Path
    nodes: list[LocalNode] = field(default_factory=list)

    @property
    def apis(self) -> list[str]:
        return [n.api for n in self.nodes]

    def describe(self) -> dict[str, Any]:
        return {
            "network": f"{DEV_NETWORK_ID:#x}",
            "nodes": [
                {
                    "api": n.api,
                    "pid": n.process.pid if n.process else None,
                    "data_dir": str(n.data_dir),
                    "faucet_index": n.index,
                    "log": str(n.log),
                }
                for n in self.nodes
            ],
        }

    def stop(self, timeout: float = 15.0) -> list[int]:
        """SIGTERM every node, wait for each (kill -9 after ``timeout``); their exit codes."""
        for node in self.nodes:
            node.terminate()
        codes = []
        for node in self.nodes:
            try:
                codes.append(node.wait(timeout))
            except DevnetError:
                codes.append(node.process.returncode if node.process else -9)
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
    for i in range(nodes):
        peers = [arg for j in range(i) for arg in ("--peer", devnet.nodes[j].api)]
        args = ("--dev", "--host", host, "--api-port", str(base_port + i))
        node = LocalNode(data_dir / f"node{i}", (*args, "--faucet-index", str(i), *peers, *extra))
        node.index = i
        devnet.nodes.append(node.spawn(own_session=True))
        # Each node dials the ones before it: wait until it listens before starting the
        # next, so that every first dial finds its peer up (no reconnect backoff to sit out).
        try:
            node.wait_listening(timeout)
        except DevnetError:
            devnet.stop()
            raise
    (data_dir / "devnet.json").write_text(json.dumps(devnet.describe(), indent=2) + "\n")
    return devnet
