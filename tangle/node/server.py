"""Run a node: storage, API, signals (layer 5, I/O).

``serve`` starts the node and its HTTP API, writes ``DATA_DIR/node.json`` with the
address it really listens on (so ``--api-port 0`` works for tests), and stops
gracefully on SIGINT or SIGTERM: the API stops taking requests, the loops stop, and
the writer commits what it holds before the database closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time

from aiohttp import web

from tangle.node.api import make_app
from tangle.node.config import NodeConfig
from tangle.node.gossip import Gossip
from tangle.node.node import Node

log = logging.getLogger("tangle.node")


class LogfmtFormatter(logging.Formatter):
    """One line per event: ts=... level=... logger=... msg="..." (structured, greppable)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace('"', "'")
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
            f'logger={record.name} msg="{message}"'
        )
        if record.exc_info:
            line += f' exc="{self.formatException(record.exc_info)!r}"'
        return line


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(config: NodeConfig, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT or SIGTERM (or until the task is cancelled)."""
    node = Node(config)
    await node.start()
    gossip = Gossip(node)
    app = make_app(node)
    app.router.add_get("/gossip", gossip.handle)

    async def peers(request: web.Request) -> web.Response:
        return web.json_response(gossip.status())

    app.router.add_get("/api/v1/peers", peers)
    # keepalive_timeout: an idle HTTP connection (or one that never finishes its request
    # line) is closed after 5 s, not aiohttp's hour; shutdown_timeout: SIGTERM waits at
    # most 2 s for handlers still running.
    runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=5, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.api_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await node.stop()
        raise SystemExit(
            f"tangle node: cannot listen on {config.host}:{config.api_port}: {exc}"
        ) from None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = f"http://{config.host}:{port}"
    info = {"api": api, "pid": os.getpid(), "network_id": f"{node.params.network_id:#x}"}
    (config.data_dir / "node.json").write_text(json.dumps(info))
    gossip.start(api)
    log.info(
        "listening on %s, data in %s, %d transactions",
        api,
        config.data_dir,
        node.counts()["transactions"],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await gossip.stop()
        await runner.cleanup()
        await node.stop()
        log.info("stopped cleanly")
