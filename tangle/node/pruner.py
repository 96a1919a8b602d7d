"""When and how a node prunes (layer 5; the policy is :func:`tangle.pruning.prune_plan`).

**When.** Every ``--prune-interval`` seconds (age, ``--prune-age``), and *on arrival*:
as soon as the node holds more than ``--max-transactions``, the prune loop is woken at
once instead of at its next tick, so a burst cannot grow the DAG's quadratic ancestry
far past the bound before a prune (issue 12, finding 10). A prune past the bound keeps
the newest half whole, so the count falls to about half the bound and the next one is
due after as many arrivals again. When a prune cannot make room (little is confirmed
yet), the next is tried only after another tenth of the bound has arrived, not at every
arrival. And a hard **ceiling** at 1.5 x the bound: there the node takes no more
transactions (API: 503 ``overloaded``; gossip: not taken, offered again by the peers'
inventories) except its own, until a prune makes room.

**How.** Disk first: the snapshot and the deletion of what goes are one commit, and a
failed commit leaves memory as it was. Then the new tangle and engine are built from
the snapshot and what is kept *on a worker thread*, from immutable transactions, while
the event loop goes on serving the old ones; back on the loop, what arrived meanwhile,
the confirmations made meanwhile and what still waits for parents are carried over,
and the new state is swapped in. The loop never stops for the whole rebuild, only for
the plan and the carry-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tangle.balances import AddressIndex
from tangle.engine import Engine, EngineParams
from tangle.node.config import NodeConfig
from tangle.node.errors import StorageError
from tangle.node.storage import SqliteStore
from tangle.pruning import PrunePolicy, prune_plan
from tangle.snapshot import Snapshot
from tangle.tangle import Tangle
from tangle.transaction import Transaction, TxId
from tangle.validation import NetworkParams

log = logging.getLogger(__name__)

PRUNED_MEMORY = 1_000_000
"""Pruned ids remembered (32 MB or so), so that gossip does not bring them back."""
RETRY_SHARE = 10
"""After a prune that left the node over its bound, try again once another
1/RETRY_SHARE of the bound has arrived."""


def ceiling_of(max_transactions: int) -> int:
    """Held at most, whatever arrives: 1.5 x ``--max-transactions``."""
    return max_transactions + max_transactions // 2


@dataclass(slots=True)
class Rebuilt:
    """A tangle and engine built from a snapshot and rows, with the node's indexes."""

    tangle: Tangle
    engine: Engine
    addresses: AddressIndex
    arrived: dict[TxId, float]
    recent: list[TxId]
    """The ids attached, in order (the node keeps the last few for liveness)."""


def rebuild(
    snapshot: Snapshot,
    params: NetworkParams,
    engine_params: EngineParams,
    rows: Iterable[tuple[Transaction, float]],
    confirmed: Mapping[TxId, float],
    now: float,
) -> Rebuilt:
    """A fresh tangle and engine from ``snapshot`` with ``rows`` (transactions this node
    validated before, in arrival order) replayed; touches nothing shared, so it may run
    on a thread."""
    tangle = Tangle(snapshot, params)
    engine = Engine(tangle, engine_params, now=now, confirmed=dict(confirmed))
    state = Rebuilt(tangle, engine, AddressIndex(snapshot), {}, [])
    for tx, arrived in rows:
        catch_up(state, tx, arrived)
    return state


def catch_up(state: Rebuilt, tx: Transaction, arrived: float) -> None:
    """Attach one more row to a rebuilt state."""
    result = state.engine.attach_validated(tx, arrived)
    for tx_id in result.attached:
        attached = state.tangle.get(tx_id)
        state.arrived[tx_id] = arrived
        state.addresses.add(attached, state.tangle.ledger)
        state.recent.append(tx_id)


class PruneHost(Protocol):
    """What pruning needs of its node (whose tangle and engine it replaces)."""

    @property
    def tangle(self) -> Tangle: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def arrived(self) -> Mapping[TxId, float]: ...
    @property
    def genesis(self) -> Transaction: ...
    @property
    def params(self) -> NetworkParams: ...
    @property
    def engine_params(self) -> EngineParams: ...

    config: NodeConfig
    store: SqliteStore
    clock: Callable[[], float]

    def adopt(self, state: Rebuilt) -> None: ...


class Pruner:
    """The prune loop, its on-arrival trigger and ceiling, and the pruned ids."""

    def __init__(self, host: PruneHost) -> None:
        self.host = host
        config = host.config
        self.enabled = config.prune_age > 0
        self.bound = config.max_transactions
        self.ceiling = ceiling_of(self.bound)
        self._next_at = self.bound
        """Prune on arrival once more than this many are held."""
        self._due = asyncio.Event()
        self._busy = asyncio.Lock()
        self.runs = 0
        """Prunes that dropped something."""
        self._pruned_order: deque[TxId] = deque(maxlen=PRUNED_MEMORY)
        self._pruned_ids: set[TxId] = set()

    # -- when ----------------------------------------------------------------------------

    def arrived(self, held: int) -> None:
        """The node now holds ``held`` transactions: wake the loop if past the bound."""
        if self.enabled and held > self._next_at:
            self._due.set()

    def full(self, held: int) -> bool:
        """At the ceiling: take nothing more (but the node's own transactions)."""
        return self.enabled and held >= self.ceiling

    async def loop(self) -> None:
        interval = self.host.config.prune_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), interval)
            self._due.clear()
            try:
                await self.prune(self.host.clock())
            except StorageError as exc:
                log.error("pruning failed, history kept: %s", exc)
            except Exception:  # a bug must not end pruning for good, nor stay silent
                log.exception("pruning failed, history kept")

    # -- how -----------------------------------------------------------------------------

    async def prune(self, now: float) -> int:
        """Replace old confirmed history by a snapshot (PROTOCOL §8.5) as
        :func:`tangle.pruning.prune_plan` says; returns how many transactions left memory
        and disk. Disk first: if the commit fails, memory still holds the whole history."""
        async with self._busy:
            try:
                return await self._prune(now)
            finally:
                held = len(self.host.tangle)
                self._next_at = max(self.bound, held + self.bound // RETRY_SHARE)
                self.arrived(held)

    async def _prune(self, now: float) -> int:
        host = self.host
        config = host.config
        policy = PrunePolicy(age=config.prune_age, max_transactions=config.max_transactions)
        history = host.tangle.history()
        chosen = prune_plan(host.engine, host.arrived, now, policy)
        if chosen is None:
            return 0
        snapshot, retained, dropped = chosen.snapshot, chosen.retained, chosen.dropped
        if snapshot.supply != host.tangle.supply:
            raise StorageError(
                f"a snapshot would hold {snapshot.supply}, not the supply {host.tangle.supply}"
            )
        await asyncio.wrap_future(host.store.prune(snapshot.encode(), dropped))
        began = time.monotonic()
        arrived = dict(host.arrived)
        rows = [(tx, arrived.get(tx.id, now)) for tx in retained]
        present = {tx.id for tx in retained} | set(snapshot.roots)
        confirmed = {t: at for t, at in host.engine.confirmations().items() if t in present}
        state = await asyncio.to_thread(
            rebuild, snapshot, host.params, host.engine_params, rows, confirmed, host.clock()
        )
        # Back on the loop: what changed while the thread built (arrivals since the plan,
        # confirmations, the solidification buffer), then the swap.
        known = {tx.id for tx in history}
        since = [tx for tx in host.tangle.history() if tx.id not in known]
        for tx in since:
            catch_up(state, tx, host.arrived.get(tx.id, now))
        state.engine.adopt_confirmations(host.engine.confirmations())
        for tx in host.tangle.buffered():  # still waiting for parents: keep waiting
            state.tangle.attach_validated(tx)
        host.adopt(state)
        self.forget(dropped)
        self.runs += 1
        log.info(
            "pruned %d transactions into snapshot %s (%d entry points, %d outputs); "
            "kept %d; rebuilt in %.3f s, off the event loop but for %d caught up",
            len(dropped),
            snapshot.id.hex()[:16],
            len(snapshot.entry_points),
            len(snapshot.outputs),
            len(rows) + len(since),
            time.monotonic() - began,
            len(since),
        )
        return len(dropped)

    def forget(self, ids: list[TxId]) -> None:
        """Remember (boundedly) what was pruned, so that gossip neither asks for it nor
        takes it back."""
        for tx_id in ids:
            if len(self._pruned_order) == self._pruned_order.maxlen:
                self._pruned_ids.discard(self._pruned_order[0])
            self._pruned_order.append(tx_id)
            self._pruned_ids.add(tx_id)
        self._pruned_ids.add(self.host.genesis.id)  # a genesis-shaped frame is no peer's fault

    def is_pruned(self, tx_id: TxId) -> bool:
        return tx_id in self._pruned_ids
