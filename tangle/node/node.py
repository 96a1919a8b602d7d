"""The peer node: keeps the tangle, persists it, confirms, serves the API (layer 5).

Ingest pipeline for a fresh transaction (API): decode, duplicate check, stateless
rules (§5, on a worker thread: the signature check is the costly part), admission
(known parents, adaptive work §6.5, not born conflicting §8.3, no confirmed rival),
attach, persist, and acknowledge only once the row is committed. CPU-heavy work never
runs on the event loop: signature checks and proof of work go to threads, SQLite
commits to its writer thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pow
from pow.adaptive import IssuerRates
from tangle.address import Address, encode_address
from tangle.builder import build, payments_with_change, select_inputs
from tangle.engine import Engine, EngineParams
from tangle.errors import InsufficientWork, TangleError, UnknownTransaction
from tangle.ledger import ConflictReason
from tangle.node.config import NodeConfig, resolve_genesis
from tangle.node.errors import Rejected, StorageError
from tangle.node.events import EventLog
from tangle.node.genesis import dev_faucet_key
from tangle.node.storage import SqliteStore
from tangle.signing import Keypair
from tangle.snapshot import Snapshot, check_descends, decode_snapshot, plan, split
from tangle.tangle import AttachResult, Tangle, TxStatus
from tangle.transaction import Output, OutputId, Transaction, TxId, decode
from tangle.validation import validate_stateless

log = logging.getLogger(__name__)

address_text = functools.lru_cache(maxsize=1 << 16)(encode_address)
"""The bech32m text of an address, memoised: events name an address per output, devices
reuse their addresses, and the checksum costs ~80 us in Python."""
VERSION = "0.1.0"
PARENT_WAIT = 3.0
"""Seconds a submission waits for parents it names but this node has not yet heard of
(tips taken from another node arrive by gossip within milliseconds)."""


PRUNED_MEMORY = 1_000_000
"""Pruned ids remembered (32 MB or so), so that gossip does not bring them back."""
PRUNE_AT_LEAST = 10
"""Prune only when at least 1/10 of the history can go: each pruning rebuilds the tangle
from what is kept (~75 µs per transaction, on the event loop)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    tx_id: TxId
    created: bool
    """False when the node already had it (the API answers 200 instead of 201)."""


class Node:
    """One tangle node: a Tangle, its Engine, durable storage and background loops."""

    def __init__(self, config: NodeConfig, clock: Callable[[], float] = time.time) -> None:
        self.genesis, self.params = resolve_genesis(config)
        self.config = config
        self.clock = clock
        self.faucet = dev_faucet_key(self.params.network_id, config.faucet_index)
        self._trusted = {self.faucet.public_key} if config.dev else set()
        """Issuers whose work this node does not raise (its own key, and on a dev network
        its faucet; elsewhere anyone could derive the faucet key)."""
        self.key = Keypair(config.node_seed or secrets.token_bytes(32))
        self._trusted.add(self.key.public_key)
        self.tangle = Tangle(self.genesis, self.params)
        self.started = clock()
        self.engine = Engine(self.tangle, EngineParams(), now=self.started)
        self.rates = IssuerRates()
        self.store = SqliteStore(config.db_path)
        self.rng = random.Random(secrets.randbits(64))
        self._by_address: dict[Address, list[OutputId]] = {}
        self._arrived: dict[TxId, float] = {}
        """When each transaction above the snapshot arrived (pruning goes by age)."""
        self._uncommitted: dict[TxId, tuple[bytes, bytes, float]] = {}
        """Attached, queued for the disk, not yet committed (not yet acknowledged)."""
        self._waiters: dict[TxId, asyncio.Future[None]] = {}
        self._unwritten: list[tuple[bytes, bytes, float]] = []
        self._parent_waiters: dict[TxId, list[asyncio.Future[None]]] = {}
        self._pruned_order: deque[TxId] = deque(maxlen=PRUNED_MEMORY)
        self._pruned_ids: set[TxId] = set()
        self.snapshot_id = self.tangle.snapshot.id
        """Submissions waiting for a parent that gossip has not brought yet."""
        self._faucet_lock = asyncio.Lock()
        self._faucet_last: TxId | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._arrivals: deque[float] = deque(maxlen=10_000)
        self._recent: deque[TxId] = deque(maxlen=256)
        self._announced_conflicts: set[TxId] = set()
        self.stopping = False
        self.events = EventLog()
        self.live = False
        """False while replaying the database: old history is not news."""
        self.on_new: list[Callable[[Transaction], None]] = []
        """Called with each transaction this node admitted fresh (gossip forwards them)."""
        self._index_snapshot()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay the database, then start the writer and the background loops."""
        for key, mine in (
            ("network_id", self.params.network_id.to_bytes(8, "big")),
            ("genesis_id", bytes(self.genesis.id)),
        ):
            stored = self.store.get_meta(key)
            if stored is None:
                self.store.set_meta(key, mine)
            elif stored != mine:
                raise StorageError(
                    f"{self.config.db_path} holds {key.replace('_', ' ')} {stored.hex()}, "
                    f"expected {mine.hex()}: use another --data-dir"
                )
        if self.config.snapshot_from and self.store.count() == 0 and not self.store.snapshot():
            await self._fetch_snapshot(self.config.snapshot_from)
        replayed = await asyncio.to_thread(self._replay)
        log.info("replayed %d transactions from %s", replayed, self.config.db_path)
        loop = asyncio.get_running_loop()

        def on_commit(ids: list[bytes], error: StorageError | None) -> None:
            loop.call_soon_threadsafe(self._committed, ids, error)

        self.store.on_commit = on_commit
        self.store.start()
        self.live = True
        self._tasks = [
            asyncio.create_task(self._confirm_loop(), name="confirm"),
            asyncio.create_task(self._liveness_loop(), name="liveness"),
        ]
        if self.config.prune_age > 0:
            self._tasks.append(asyncio.create_task(self._prune_loop(), name="prune"))

    async def _fetch_snapshot(self, url: str) -> None:
        """Start from a peer's snapshot: checked against this network's genesis."""
        import aiohttp

        address = url.rstrip("/") + "/api/v1/snapshot"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
                session.get(address) as response,
            ):
                if response.status != 200:
                    raise StorageError(f"snapshot from {address}: HTTP {response.status}")
                data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StorageError(f"cannot fetch the snapshot from {address}: {exc}") from None
        try:
            snapshot = decode_snapshot(data)
            check_descends(snapshot, self.genesis)
        except TangleError as exc:
            raise StorageError(f"the snapshot from {address} is unusable: {exc}") from None
        self.store.set_meta("snapshot", data)
        log.info(
            "starting from the snapshot of %s: id %s, %d transactions pruned, %d entry points",
            url,
            snapshot.id.hex(),
            snapshot.pruned,
            len(snapshot.entry_points),
        )

    def _replay(self) -> int:
        stored = self.store.snapshot()
        snapshot = Snapshot.of_genesis(self.genesis)
        if stored is not None:
            snapshot = decode_snapshot(stored)
            check_descends(snapshot, self.genesis)
        confirmed = {TxId(k): v for k, v in self.store.confirmations().items()}
        rows = [(decode(row.raw), row.arrived) for row in self.store.load()]
        self._rebuild(snapshot, rows, confirmed)
        return len(rows)

    def _rebuild(
        self,
        snapshot: Snapshot,
        rows: list[tuple[Transaction, float]],
        confirmed: dict[TxId, float],
    ) -> None:
        """A fresh tangle and engine from ``snapshot`` with ``rows`` replayed in order."""
        live, self.live = self.live, False
        try:
            self.tangle = Tangle(snapshot, self.params)
            self.engine = Engine(self.tangle, EngineParams(), now=self.clock(), confirmed=confirmed)
            self.snapshot_id = snapshot.id
            self._by_address = {}
            self._arrived = {}
            self._index_snapshot()
            for tx, arrived in rows:
                result = self.engine.attach(tx, arrived, prevalidated=True)
                for tx_id in result.attached:
                    self._index(self.tangle.get(tx_id), arrived, replay=True)
            self._recent = deque((t for t in self._recent if t in self.tangle), maxlen=256)
            if self._faucet_last is not None and self._faucet_last not in self.tangle:
                self._faucet_last = None
        finally:
            self.live = live

    def _index_snapshot(self) -> None:
        for oid, output in self.tangle.snapshot.outputs:
            self._by_address.setdefault(output.address, []).append(oid)

    async def stop(self) -> None:
        """Stop the loops, flush the writer, close the database. Idempotent."""
        if self.stopping:
            return
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.store.close)

    # -- ingest ------------------------------------------------------------------------------

    async def submit(self, raw: bytes) -> Submitted:
        """Admit a fresh transaction and return once it is durable.

        Raises:
            EncodingError: the bytes are not a transaction (§4.4).
            InvalidTransaction: a stateless rule is broken (§5).
            Rejected: this node does not admit it (unknown parent, conflicting, ...).
        """
        tx = decode(raw)
        if tx.id in self.tangle:
            await self._wait_durable(tx.id)
            return Submitted(tx.id, created=False)
        await asyncio.to_thread(validate_stateless, tx, self.params)
        await self._wait_for_parents(tx)
        if tx.id in self.tangle:  # someone else submitted it meanwhile
            await self._wait_durable(tx.id)
            return Submitted(tx.id, created=False)
        self._admit(tx)
        now = self.clock()
        self._attach(tx, now)
        self.rates.record(tx.issuer, now)
        # Peers hear of it at once: forwarding needs validity, not our disk (only the
        # acknowledgement below waits for the commit).
        for callback in self.on_new:
            callback(tx)
        await self._wait_durable(tx.id)
        return Submitted(tx.id, created=True)

    def accept(self, tx: Transaction) -> AttachResult:
        """Attach a transaction a peer sent, already run through §5 by the caller.

        No admission rules here: a transaction already in the network is accepted on
        validity alone, so that its approvers can become solid (PROTOCOL §6.5, §8.3).
        """
        return self._attach(tx, self.clock())

    def _attach(self, tx: Transaction, now: float) -> AttachResult:
        """Attach a transaction already through §5, index and persist what got attached."""
        result = self.engine.attach(tx, now, prevalidated=True)
        for tx_id in result.attached:
            attached = self.tangle.get(tx_id)
            self._index(attached, now)
            self._persist(attached, now)
        return result

    async def _wait_for_parents(self, tx: Transaction) -> None:
        """Up to PARENT_WAIT seconds for parents still on their way by gossip: woken when
        they attach (no polling: a thousand waiting submissions cost nothing)."""
        missing = self.tangle.missing_parents_of(tx)
        if not missing:
            return
        loop = asyncio.get_running_loop()
        waits = []
        for parent in missing:
            waiter: asyncio.Future[None] = loop.create_future()
            self._parent_waiters.setdefault(parent, []).append(waiter)
            waits.append(waiter)
        try:
            await asyncio.wait(waits, timeout=PARENT_WAIT)
        finally:
            for parent, waiter in zip(missing, waits, strict=True):
                waiter.cancel()
                left = self._parent_waiters.get(parent)
                if left is not None:
                    left[:] = [w for w in left if w is not waiter]
                    if not left:
                        del self._parent_waiters[parent]

    def _admit(self, tx: Transaction) -> None:
        missing = self.tangle.missing_parents_of(tx)
        if missing:
            raise Rejected(
                "unknown_parent",
                f"parent {missing[0].hex()} is unknown to this node (waited {PARENT_WAIT:g} s): "
                "approve tips from GET /api/v1/tips",
            )
        if tx.issuer in self._trusted:
            required = self.params.required_difficulty(tx)  # the node trusts itself
        else:
            required = self.rates.required(
                self.params.base_difficulty, tx.size, tx.issuer, self.clock()
            )
        done = pow.work(tx.pow_data(), tx.nonce)
        if done < required:
            raise Rejected(
                "insufficient_work",
                str(InsufficientWork(required, done))
                + "; this issuer sent fast recently, so this node asks more (PROTOCOL §6.5)",
                extra={"required_difficulty": required, "actual_difficulty": done},
            )
        verdict = self.tangle.preview(tx)
        if not verdict.consistent:
            raise Rejected(
                "conflicting",
                f"{verdict.reason.name}: {verdict.detail} (PROTOCOL §8.3)",
            )
        for output_id in tx.inputs:
            for spender in self.tangle.ledger.spenders(output_id):
                status = self.engine.status(spender)
                if spender != tx.id and status in (TxStatus.PENDING, TxStatus.CONFIRMED):
                    raise Rejected(
                        "double_spend",
                        f"inputs: output {output_id.hex()} is already spent by "
                        f"{status.name.lower()} transaction {spender.hex()} (PROTOCOL §8.4): "
                        "this node refuses a second spend",
                        409,
                        extra={"output_id": output_id.hex(), "spent_by": spender.hex()},
                    )

    def _index(self, tx: Transaction, arrived: float, *, replay: bool = False) -> None:
        self._arrived[tx.id] = arrived
        for waiter in self._parent_waiters.pop(tx.id, ()):
            if not waiter.done():
                waiter.set_result(None)
        ledger = self.tangle.ledger
        for index, output in enumerate(tx.outputs):
            oid = OutputId(tx.id, index)
            if not ledger.in_base(oid):  # a snapshot's output is indexed already
                self._by_address.setdefault(output.address, []).append(oid)
        self._recent.append(tx.id)
        if replay:
            return  # old news: no events, and no arrivals for the throughput figure
        if self.live:
            self._publish_attached(tx)
        self._arrivals.append(self.clock())

    def _publish_attached(self, tx: Transaction) -> None:
        events = self.events
        events.publish(
            "transactions",
            {
                "id": tx.id.hex(),
                "issuer": tx.issuer.hex(),
                "outputs": len(tx.outputs),
                "payload_bytes": len(tx.payload),
            },
        )
        for index, output in enumerate(tx.outputs):
            events.publish(
                f"address:{address_text(output.address)}",
                {
                    "event": "received",
                    "id": tx.id.hex(),
                    "output_id": f"{tx.id.hex()}{index:04x}",  # OutputId.hex(), cheaper
                    "amount": str(output.amount),
                },
            )
        reason = self.engine.conflict_reason(tx.id)
        if reason is not ConflictReason.NONE:
            events.publish("conflicts", {"id": tx.id.hex(), "reason": reason.name.lower()})

    def _publish_confirmed(self, newly: list[TxId]) -> None:
        if newly:
            self.store.confirm(list(newly), self.clock())  # a restart must not forget
        events = self.events
        for tx_id in newly:
            tx = self.tangle.get(tx_id)
            events.publish("confirmations", {"id": tx_id.hex()})
            for index, output in enumerate(tx.outputs):
                events.publish(
                    f"address:{address_text(output.address)}",
                    {
                        "event": "confirmed",
                        "id": tx_id.hex(),
                        "output_id": f"{tx_id.hex()}{index:04x}",
                        "amount": str(output.amount),
                    },
                )
            for output_id in tx.inputs:
                for rival in self.tangle.ledger.spenders(output_id):
                    if rival != tx_id and rival not in self._announced_conflicts:
                        self._announced_conflicts.add(rival)
                        reason = self.engine.conflict_reason(rival).name.lower()
                        events.publish("conflicts", {"id": rival.hex(), "reason": reason})

    def _persist(self, tx: Transaction, now: float) -> None:
        self._write((tx.id, tx.encode(), now))

    def _write(self, row: tuple[bytes, bytes, float]) -> None:
        if not self._unwritten:
            asyncio.get_running_loop().call_soon(self._hand_over)
        self._unwritten.append(row)
        self._uncommitted[TxId(row[0])] = row

    def _hand_over(self) -> None:
        """Everything attached in this turn of the loop goes to the writer at once."""
        rows, self._unwritten = self._unwritten, []
        self.store.append_many(rows)

    def _committed(self, ids: list[bytes], error: StorageError | None) -> None:
        """On the loop, once per committed group: wake whoever waits for these rows. A
        failed commit fails its waiters (503) and is tried again a second later: the rows
        stay unacknowledged until they are on disk."""
        retry = []
        for raw_id in ids:
            tx_id = TxId(raw_id)
            if error is None:
                self._uncommitted.pop(tx_id, None)
            elif tx_id in self._uncommitted:
                retry.append(self._uncommitted[tx_id])
            waiter = self._waiters.pop(tx_id, None)
            if waiter is not None and not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        if retry and not self.stopping:
            asyncio.get_running_loop().call_later(1.0, self._rewrite, retry)

    def _rewrite(self, rows: list[tuple[bytes, bytes, float]]) -> None:
        for row in rows:
            self._write(row)

    async def _wait_durable(self, tx_id: TxId) -> None:
        if tx_id not in self._uncommitted:
            return
        waiter = self._waiters.get(tx_id)
        if waiter is None:
            waiter = self._waiters[tx_id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    # -- issuing the node's own transactions -------------------------------------------------

    async def issue(
        self,
        key: Keypair,
        inputs: list[OutputId],
        payments: dict[Address, int],
        payload: bytes,
        *,
        promote: TxId | None = None,
    ) -> Transaction:
        """Build (proof of work on a thread) and submit a transaction of this node's.

        With ``promote``, the trunk is that transaction (when it goes with the branch the
        walk chose), so a payment waiting alone gets an approver at once.
        """
        trunk, branch = self.engine.select_tips(self.rng, self.clock())
        if promote is not None and self.tangle.can_approve(promote, branch):
            trunk = promote
        return await self._build_and_submit(key, (trunk, branch), inputs, payments, payload)

    async def _build_and_submit(
        self,
        key: Keypair,
        parents: tuple[TxId, TxId],
        inputs: list[OutputId],
        payments: dict[Address, int],
        payload: bytes = b"",
    ) -> Transaction:
        """Sign and solve on a thread, then submit; returns once durable."""
        tx = await asyncio.to_thread(
            build,
            key,
            self.params,
            trunk=parents[0],
            branch=parents[1],
            timestamp=int(self.clock() * 1000),
            inputs=inputs,
            payments=payments,
            payload=payload,
        )
        await self.submit(tx.encode())
        return tx

    def tips_approving(self, wanted: list[TxId]) -> tuple[TxId, TxId]:
        """Tips from the walk, swapped for ``wanted`` transactions the pair does not yet
        approve: a wallet spending pending outputs must see them (§8.2).

        Raises:
            Rejected: an id is unknown (404), is not live, or more than two are out of view
                (a consolidation first), or the pair would conflict (409).
        """
        for tx_id in wanted:
            if tx_id not in self.tangle:
                raise Rejected("not_found", f"approve: transaction {tx_id.hex()} is unknown", 404)
            if not self.is_live(tx_id):
                status = self.engine.status(tx_id).name.lower()
                raise Rejected("not_live", f"approve: transaction {tx_id.hex()} is {status}", 409)
        trunk, branch = self.engine.select_tips(self.rng, self.clock())
        dag = self.tangle.dag
        unseen = [
            t
            for t in dict.fromkeys(wanted)
            if not (dag.in_past_cone(t, trunk) or dag.in_past_cone(t, branch))
        ]
        if len(unseen) > 2:
            raise Rejected(
                "too_many_parents",
                f"approve: {len(unseen)} of the transactions are not yet in view of any tip, "
                "a transaction has two parents; consolidate, or wait for them to be approved",
                409,
            )
        if unseen:
            trunk = unseen[0]
            branch = unseen[1] if len(unseen) == 2 else branch
            if not self.tangle.can_approve(trunk, branch):
                if len(unseen) == 2:
                    raise Rejected(
                        "conflicting", "approve: the two transactions conflict (§8.4)", 409
                    )
                branch = trunk
        return trunk, branch

    async def pay_from_faucet(self, address: Address, amount: int) -> TxId:
        """Dev networks: pay ``amount`` from the faucet; returns once durable."""
        if amount < 1:
            raise Rejected("bad_amount", f"amount: expected at least 1, got {amount}", 400)
        async with self._faucet_lock:
            trunk, branch = self.engine.select_tips(self.rng, self.clock())
            # Approve the faucet's previous payment, so that its change is in view and
            # its spends are never made twice.
            last = self._faucet_last
            dag = self.tangle.dag
            if (
                last is not None
                and last in self.tangle
                and self.is_live(last)
                and not (dag.in_past_cone(last, trunk) or dag.in_past_cone(last, branch))
            ):
                trunk, branch = (
                    (last, branch) if self.tangle.can_approve(last, branch) else (last, last)
                )
            view = self.tangle.unspent_seen_by(trunk, branch)
            chosen, total = select_inputs(
                ((oid, o.amount) for oid, o in view.items() if o.address == self.faucet.address),
                amount,
            )
            if total < amount:
                raise Rejected("insufficient_funds", f"the faucet has {total}, needs {amount}", 409)
            payments = payments_with_change(address, amount, self.faucet.address, total)
            tx = await self._build_and_submit(self.faucet, (trunk, branch), chosen, payments)
            self._faucet_last = tx.id
            return tx.id

    # -- background loops ----------------------------------------------------------------------

    async def _confirm_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.confirm_interval)
            try:
                newly = self.engine.confirm(self.rng, self.clock())
            except ValueError as exc:  # nothing walkable yet
                log.debug("confirmation skipped: %s", exc)
                continue
            except Exception:  # a bug must not end confirmation for good, nor stay silent
                log.exception("confirmation pass failed")
                continue
            self._publish_confirmed(newly)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.prune_interval)
            try:
                await self.prune(self.clock())
            except StorageError as exc:
                log.error("pruning failed, history kept: %s", exc)
            except Exception:  # a bug must not end pruning for good, nor stay silent
                log.exception("pruning failed, history kept")

    async def prune(self, now: float) -> int:
        """Replace old confirmed history by a snapshot (PROTOCOL §8.5); returns how many
        transactions left memory and disk.

        Kept whole: everything younger than ``prune_age`` (fewer when more than
        ``max_transactions`` are held), everything pending, and the tips. Pruned: the
        confirmed history that all of those saw. Dropped: old side branches that are
        conflicting or orphaned and that nothing kept approves.
        """
        history = self.tangle.history()
        cutoff = now - self.config.prune_age
        if len(history) > self.config.max_transactions:
            newest = history[-(self.config.max_transactions // 2)]
            cutoff = max(cutoff, self._arrived.get(newest.id, now))
        if not history or self._arrived.get(history[0].id, now) >= cutoff:
            return 0
        engine, window = self.engine, self.engine.window
        keep: list[TxId] = []
        for tx in history:
            status = engine.status(tx.id)
            if status is TxStatus.CONFIRMED:
                if self._arrived.get(tx.id, now) >= cutoff:
                    keep.append(tx.id)
            elif (
                status is TxStatus.PENDING
                and tx.id in window
                and window.walkable[window.slot(tx.id)]
            ):
                keep.append(tx.id)
        keep += [
            t
            for t in self.tangle.consistent_tips()
            if engine.status(t) is TxStatus.CONFIRMED
            or (
                engine.status(t) is TxStatus.PENDING
                and t in window
                and window.walkable[window.slot(t)]
            )
        ]
        confirmed = engine.confirmations()
        pruned, in_cones = plan(self.tangle, keep, lambda t: t in confirmed)
        if not pruned:
            return 0
        gone = {tx.id for tx in pruned}
        cone_ids = {tx.id for tx in in_cones}
        # The kept cones, and whatever else is recent or pending (acknowledged, never
        # dropped; judged again against the snapshot, §8.5).
        retained = [
            tx
            for tx in history
            if tx.id not in gone
            and (
                tx.id in cone_ids
                or self._arrived.get(tx.id, now) >= cutoff
                or engine.status(tx.id) is TxStatus.PENDING
            )
        ]
        kept_ids = {tx.id for tx in retained}
        dropped = [tx.id for tx in history if tx.id not in kept_ids]
        if len(dropped) < max(1, len(history) // PRUNE_AT_LEAST):
            return 0  # a rebuild costs in proportion to what is kept: not worth it yet
        snapshot = split(
            self.tangle.snapshot,
            pruned,
            retained,
            confirmed=lambda t: t in confirmed,
            below=self.tangle.dag.in_past_cone,
        )
        if snapshot.supply != self.tangle.supply:
            raise StorageError(
                f"a snapshot would hold {snapshot.supply}, not the supply {self.tangle.supply}"
            )
        # Disk first: if the commit fails, memory still holds the whole history.
        await asyncio.wrap_future(self.store.prune(snapshot.encode(), dropped))
        began = time.monotonic()
        known = {tx.id for tx in history}
        since = [tx for tx in self.tangle.history() if tx.id not in known]  # during the commit
        buffered = self.tangle.buffered()
        confirmed = self.engine.confirmations()
        rows = [(tx, self._arrived.get(tx.id, now)) for tx in (*retained, *since)]
        present = {tx.id for tx, _ in rows} | set(snapshot.roots)
        self._rebuild(snapshot, rows, {t: at for t, at in confirmed.items() if t in present})
        for tx in buffered:  # still waiting for parents: keep waiting
            self.engine.tangle.attach_prevalidated(tx)
        self._forget(dropped)
        rebuilt = time.monotonic() - began
        log.info(
            "pruned %d transactions into snapshot %s (%d entry points, %d outputs); "
            "kept %d; rebuilt in %.3f s",
            len(dropped),
            snapshot.id.hex()[:16],
            len(snapshot.entry_points),
            len(snapshot.outputs),
            len(rows),
            rebuilt,
        )
        return len(dropped)

    def _forget(self, ids: list[TxId]) -> None:
        """Remember (boundedly) what was pruned, so that gossip neither asks for it nor
        takes it back."""
        for tx_id in ids:
            if len(self._pruned_order) == self._pruned_order.maxlen:
                self._pruned_ids.discard(self._pruned_order[0])
            self._pruned_order.append(tx_id)
            self._pruned_ids.add(tx_id)
        self._pruned_ids.add(self.genesis.id)  # a genesis-shaped frame is no peer's fault

    def is_pruned(self, tx_id: TxId) -> bool:
        return tx_id in self._pruned_ids

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.liveness_interval)
            now = self.clock()
            if self._has_pending() and self.engine.consolidation_due(now):
                try:
                    await self.issue(self.key, [], {}, b"", promote=self._oldest_pending_tip())
                except (TangleError, StorageError, ValueError) as exc:  # ValueError: no tips
                    log.warning("consolidation transaction failed: %s", exc)
                except Exception:  # a bug must not end liveness for good, nor stay silent
                    log.exception("consolidation transaction failed")

    def _oldest_pending_tip(self) -> TxId | None:
        """The oldest recent transaction still pending, unapproved and walkable."""
        w = self.engine.window
        for tx_id in self._recent:
            if (
                tx_id in w
                and w.is_tip(w.slot(tx_id))
                and w.walkable[w.slot(tx_id)]
                and self._needs_confirmation(tx_id)
            ):
                return tx_id
        return None

    def _needs_confirmation(self, tx_id: TxId) -> bool:
        """Pending, and not one of this node's own empty transactions (which need no
        confirmation: counting them would make an idle node issue one per second forever)."""
        if tx_id not in self.tangle or self.engine.status(tx_id) is not TxStatus.PENDING:
            return False
        tx = self.tangle.get(tx_id)
        return tx.issuer != self.key.public_key or tx.moves_value or bool(tx.payload)

    def _has_pending(self) -> bool:
        """Is a recent transaction still waiting? A settled, idle tangle stays quiet."""
        return any(self._needs_confirmation(t) for t in self._recent)

    # -- what gossip asks of the node ------------------------------------------------------------

    def has(self, tx_id: TxId) -> bool:
        """Attached here."""
        return tx_id in self.tangle

    def knows(self, tx_id: TxId) -> bool:
        """Attached, waiting for parents, or pruned into the snapshot: not to be asked for."""
        return tx_id in self.tangle or self.tangle.is_buffered(tx_id) or tx_id in self._pruned_ids

    def raw(self, tx_id: TxId) -> bytes | None:
        """The canonical bytes of an attached transaction (None when not attached)."""
        if tx_id not in self.tangle:
            return None
        return self.tangle.get(tx_id).encode()

    def tips(self) -> list[TxId]:
        """The tangle's tips, sorted by id."""
        return sorted(self.tangle.tips())

    def missing_parents(self) -> frozenset[TxId]:
        """Parents that buffered transactions wait for and nobody has sent yet."""
        return self.tangle.missing_parents()

    # -- queries ---------------------------------------------------------------------------------

    def outputs_of(self, address: Address) -> list[tuple[OutputId, Output]]:
        ledger = self.tangle.ledger
        found = []
        for oid in self._by_address.get(address, []):
            output = ledger.output(oid)
            if output is not None:
                found.append((oid, output))
        return found

    def output_status(self, output_id: OutputId) -> TxStatus:
        """The status of the output's creator; a snapshot's outputs are confirmed."""
        if self.tangle.ledger.in_base(output_id) or output_id.tx_id not in self.tangle:
            return TxStatus.CONFIRMED  # the genesis's, or history the snapshot replaced
        return self.engine.status(output_id.tx_id)

    def is_live(self, tx_id: TxId) -> bool:
        """Confirmed or pending (not conflicting, not orphaned)."""
        return self.engine.status(tx_id) in (TxStatus.CONFIRMED, TxStatus.PENDING)

    def spent(self, output_id: OutputId, *, confirmed_only: bool) -> TxId | None:
        """A spender of ``output_id`` that counts: confirmed, or also pending."""
        for spender in self.tangle.ledger.spenders(output_id):
            status = self.engine.status(spender)
            if status is TxStatus.CONFIRMED or (not confirmed_only and status is TxStatus.PENDING):
                return spender
        return None

    def balances(self, address: Address) -> tuple[int, int]:
        """(confirmed, pending): pending counts unconfirmed, unconflicted payments too."""
        confirmed = pending = 0
        for oid, output in self.outputs_of(address):
            status = self.output_status(oid)
            if status is TxStatus.CONFIRMED and self.spent(oid, confirmed_only=True) is None:
                confirmed += output.amount
            live = status in (TxStatus.CONFIRMED, TxStatus.PENDING)
            if live and self.spent(oid, confirmed_only=False) is None:
                pending += output.amount
        return confirmed, pending

    def throughput(self, window: float = 10.0) -> float:
        now = self.clock()
        return sum(1 for t in self._arrivals if now - t <= window) / window

    def get(self, tx_id: TxId) -> Transaction:
        try:
            return self.tangle.get(tx_id)
        except UnknownTransaction:
            raise Rejected("not_found", f"transaction {tx_id.hex()} is unknown", 404) from None

    def conflict_reason(self, tx_id: TxId) -> ConflictReason:
        return self.engine.conflict_reason(tx_id)
