"""The ``autotopup`` daemon: watch the fleet through the node's event stream, poll as a
fallback, and run :meth:`wallet.ops.Wallet.autotopup_pass` whenever something moved.

The event stream (``/api/v1/events?topics=address:…``) wakes a pass as soon as a
device's address sees a transaction; a dropped stream is reopened with ``since`` set to
the last event's ``EPOCH:SEQ``, so nothing in between is missed (or a gap notice tells
what was, a node restart too). The poll every
``interval`` seconds covers what the stream cannot (a node restarted, its replay buffer
overrun, a device added while the daemon runs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tangle.address import encode_address
from tangle.schema import address_topic
from wallet.client import NodeClient
from wallet.errors import WalletError
from wallet.ops import Wallet

RECONNECT_MAX = 10.0


async def watch_events(
    url: str,
    topics: list[str],
    wake: asyncio.Event,
    log: Callable[[str], None],
) -> None:
    """Set ``wake`` on every event of ``topics``; reconnect with ``since`` forever."""
    if not topics:
        return
    last: int | str | None = None
    delay = [0.5]

    def opened() -> None:
        delay[0] = 0.5  # connected: the next reconnect starts from the shortest wait

    async with NodeClient(url) as client:
        while True:
            try:
                async for event in client.events(topics, since=last, on_open=opened):
                    if isinstance(event.get("seq"), int):  # an event, or a gap: both wake
                        epoch = event.get("epoch")  # a restart between is then told
                        last = f"{epoch}:{event['seq']}" if isinstance(epoch, str) else event["seq"]
                    wake.set()
            except WalletError as exc:
                log(f"event stream: {exc}; polling until it is back")
            await asyncio.sleep(delay[0])
            delay[0] = min(RECONNECT_MAX, delay[0] * 2)


async def run_daemon(
    wallet: Wallet,
    interval: float,
    stop: asyncio.Event,
    log: Callable[[str], None],
) -> int:
    """Passes until ``stop`` is set; returns how many passes ran."""
    wake = asyncio.Event()
    topics = [address_topic(encode_address(a)) for a in wallet.device_addresses()]
    watcher = asyncio.create_task(watch_events(wallet.node_url, topics, wake, log))
    passes = 0
    log(f"autotopup: watching {len(topics)} devices, polling every {interval:g} s")
    try:
        while not stop.is_set():
            wake.clear()
            try:
                await wallet.autotopup_pass(log)
            except WalletError as exc:
                log(f"autotopup: pass failed: {exc}")
            passes += 1
            stopping = asyncio.create_task(stop.wait())
            woken = asyncio.create_task(wake.wait())
            await asyncio.wait({stopping, woken}, timeout=interval, return_when="FIRST_COMPLETED")
            for task in (stopping, woken):
                task.cancel()
            await asyncio.gather(stopping, woken, return_exceptions=True)
            if not stop.is_set():
                await asyncio.sleep(0.2)  # let a burst of events settle into one pass
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    log(f"autotopup: stopped after {passes} passes")
    return passes
