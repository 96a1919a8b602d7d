"""Submissions waiting for parents that gossip has not brought yet (layer 5).

A device takes its tips from one node and may submit to another, which hears of those
tips by gossip a few milliseconds later. Such a submission waits, up to a bound, on a
future per missing parent that the node wakes when that parent attaches: no polling,
so a thousand waiting submissions cost nothing.
"""

from __future__ import annotations

import asyncio

from tangle.transaction import TxId


class ParentWaits:
    """Futures for parents not attached yet, woken by :meth:`arrived`."""

    def __init__(self) -> None:
        self._waiters: dict[TxId, list[asyncio.Future[None]]] = {}

    def __len__(self) -> int:
        """Parents someone waits for."""
        return len(self._waiters)

    async def wait(self, missing: tuple[TxId, ...], seconds: float) -> None:
        """Return once every parent in ``missing`` arrived, or after ``seconds``
        (the caller looks again at what is attached)."""
        if not missing:
            return
        loop = asyncio.get_running_loop()
        waits = []
        for parent in missing:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(parent, []).append(waiter)
            waits.append(waiter)
        try:
            await asyncio.wait(waits, timeout=seconds)
        finally:
            for parent, waiter in zip(missing, waits, strict=True):
                waiter.cancel()
                left = self._waiters.get(parent)
                if left is not None:
                    left[:] = [w for w in left if w is not waiter]
                    if not left:
                        del self._waiters[parent]

    def arrived(self, tx_id: TxId) -> None:
        """``tx_id`` attached: wake whoever waits for it."""
        for waiter in self._waiters.pop(tx_id, ()):
            if not waiter.done():
                waiter.set_result(None)
