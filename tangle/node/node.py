"""The peer node: keeps the tangle, persists it, confirms, answers queries (layer 5).

Ingest of a fresh transaction (API, :meth:`Node.submit`): decode; duplicate check;
the stateless rules (§5, on a worker thread: the signature check is the costly part),
which also say how much work the nonce proves; a wait for parents still on their way
by gossip (up to ``PARENT_WAIT``, or what the client asked with ``?parent_wait=``);
admission (:func:`tangle.admission.admit`: known parents, adaptive work §6.5, not
born conflicting §8.3, no live rival §8.4), which yields the verdict; attach with that
verdict; persist; and acknowledge only once the row is committed
(:mod:`tangle.node.durable`). A transaction from gossip (:meth:`Node.accept`) is
attached on validity alone. Both go through one :meth:`Node._attach`, the node's one
way into the engine.

Around that: :mod:`tangle.node.bootstrap` (data dir, snapshot), :mod:`tangle.node.issuing`
(the node's own transactions), :mod:`tangle.node.events` (what it announces), and
three background loops here (confirmation, liveness, and pruning, which
:mod:`tangle.node.pruner` schedules, also on arrival past ``--max-transactions``).
CPU-heavy work never runs on the event loop: signature checks and proof of work go to
threads, SQLite commits to its writer thread, a prune's rebuild to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import tangle
from pow.adaptive import IssuerRates
from tangle import balances
from tangle.address import Address
from tangle.admission import Refusal, RefusalReason, admit
from tangle.balances import AddressIndex
from tangle.engine import Engine, EngineParams, LivenessPolicy, TxMetadata
from tangle.errors import UnknownTransaction
from tangle.ledger import Verdict
from tangle.node import bootstrap
from tangle.node.config import NodeConfig, resolve_genesis
from tangle.node.durable import Durability
from tangle.node.errors import Rejected
from tangle.node.events import EventLog
from tangle.node.genesis import dev_faucet_key
from tangle.node.issuing import Issuer
from tangle.node.load import Load, LoadLimits, RefusalRate, shed
from tangle.node.parents import ParentWaits
from tangle.node.pruner import Pruner, Rebuilt, rebuild
from tangle.node.stages import Stages
from tangle.node.storage import SqliteStore
from tangle.schema import ErrorCode
from tangle.signing import Keypair
from tangle.snapshot import Snapshot
from tangle.tangle import AttachResult, Outcome, Tangle, TxStatus
from tangle.transaction import Output, OutputId, Transaction, TxId, decode
from tangle.validation import validate_stateless

log = logging.getLogger(__name__)

PARENT_WAIT = 3.0
"""Seconds a submission waits for parents it names but this node has not yet heard of
(tips taken from another node arrive by gossip within milliseconds)."""
PASS_SHARE = 10
"""A confirmation pass waits at least this many times its own duration before the next."""
RECENT = 256
"""Recent transactions the liveness check looks at."""

_REFUSALS: dict[RefusalReason, tuple[ErrorCode, int]] = {
    RefusalReason.UNKNOWN_PARENT: (ErrorCode.UNKNOWN_PARENT, 422),
    RefusalReason.INSUFFICIENT_WORK: (ErrorCode.INSUFFICIENT_WORK, 422),
    RefusalReason.CONFLICTING: (ErrorCode.CONFLICTING, 422),
    RefusalReason.DOUBLE_SPEND: (ErrorCode.DOUBLE_SPEND, 409),
}
"""The API's error code and HTTP status for each admission refusal."""


@dataclass(frozen=True, slots=True)
class Submitted:
    tx_id: TxId
    created: bool
    """False when the node already had it (the API answers 200 instead of 201)."""


class Node:
    """One tangle node: a Tangle, its Engine, durable storage and background loops."""

    def __init__(self, config: NodeConfig, clock: Callable[[], float] = time.time) -> None:
        """Raises ConfigError when the configuration names no usable genesis."""
        self.genesis, self.params = resolve_genesis(config)
        self.config = config
        self.clock = clock
        self.key = Keypair(config.node_seed or secrets.token_bytes(32))
        self.faucet = dev_faucet_key(self.params.network_id, config.faucet_index)
        self._trusted = {self.key.public_key}
        """Issuers whose work this node does not raise (its own key, and on a dev network
        its faucet; elsewhere anyone could derive the faucet key)."""
        if config.dev:
            self._trusted.add(self.faucet.public_key)
        self.tangle = Tangle(self.genesis, self.params)
        self.started = clock()
        self.engine_params = EngineParams(liveness=LivenessPolicy(tip_wait=config.tip_wait))
        self.engine = Engine(self.tangle, self.engine_params, now=self.started)
        self.rates = IssuerRates()
        self.store = SqliteStore(config.db_path)
        self.durable = Durability(self.store)
        self.rng = random.Random(secrets.randbits(64))
        self.issuer = Issuer(self, self.key, self.faucet)
        self.events = EventLog()
        self.snapshot_id = self.tangle.snapshot.id
        self._addresses = AddressIndex(self.tangle.snapshot)
        self._arrived: dict[TxId, float] = {}
        """When each transaction above the snapshot arrived (pruning goes by age)."""
        self._parent_waits = ParentWaits()
        """Submissions waiting for a parent that gossip has not brought yet."""
        self.pruner = Pruner(self)
        self._tasks: list[asyncio.Task[None]] = []
        self._arrivals: deque[float] = deque(maxlen=10_000)
        self._recent: deque[TxId] = deque(maxlen=RECENT)
        self._announced_conflicts: set[TxId] = set()
        self.stopping = False
        self.live = False
        """False while replaying the database: old history is not news."""
        self.on_new: list[Callable[[Transaction], None]] = []
        """Called with each transaction this node admitted fresh (gossip forwards them)."""
        self.limits = LoadLimits(
            max_in_flight=config.max_in_flight, max_commit_lag=config.max_commit_lag
        )
        self.in_flight = 0
        """Submissions between their body read and their answer."""
        self._refusals = RefusalRate()
        self.stages = Stages()  # where accepted submissions spent their time (/metrics)
        self.backlog: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0)
        """The gossip ingest queue's fill (0..1) and its oldest item's age (s), set by gossip."""

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay the database, then start the writer and the background loops."""
        bootstrap.claim_data_dir(self.store, self.params, self.genesis)
        if self.config.snapshot_from and self.store.count() == 0 and not self.store.snapshot():
            await bootstrap.fetch_snapshot(self.store, self.config.snapshot_from, self.genesis)
        replayed = await asyncio.to_thread(self._replay)
        log.info("replayed %d transactions from %s", replayed, self.config.db_path)
        self.durable.start(asyncio.get_running_loop())
        self.live = True
        self._tasks = [
            asyncio.create_task(self._confirm_loop(), name="confirm"),
            asyncio.create_task(self._liveness_loop(), name="liveness"),
        ]
        if self.pruner.enabled:
            self._tasks.append(asyncio.create_task(self.pruner.loop(), name="prune"))

    def _replay(self) -> int:
        snapshot = bootstrap.stored_snapshot(self.store, self.genesis)
        confirmed = {TxId(k): v for k, v in self.store.confirmations().items()}
        rows = [(decode(row.raw), row.arrived) for row in self.store.load()]
        self.adopt(
            rebuild(snapshot, self.params, self.engine_params, rows, confirmed, self.clock())
        )
        return len(rows)

    def adopt(self, state: Rebuilt) -> None:
        """Swap in a tangle and engine rebuilt from a snapshot (a restart, a prune)."""
        self.tangle, self.engine = state.tangle, state.engine
        self.snapshot_id = state.tangle.snapshot.id
        self._addresses = state.addresses
        self._arrived = state.arrived
        self._recent = deque((t for t in state.recent if t in self.tangle), maxlen=RECENT)
        self.issuer.forget_missing()

    @property
    def arrived(self) -> dict[TxId, float]:
        """When each transaction above the snapshot arrived (pruning goes by age)."""
        return self._arrived

    async def stop(self) -> None:
        """Stop the loops, flush the writer, close the database. Idempotent."""
        if self.stopping:
            return
        self.stopping = True
        self.durable.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.store.close)

    # -- ingest ------------------------------------------------------------------------------

    def load(self) -> Load:
        """How far behind this node is (tangle.node.load)."""
        now = time.monotonic()
        fill, age = self.backlog()
        lag = self.durable.commit_lag()
        return Load(self.in_flight, lag, fill, self._refusals.rate(now), ingest_age=age)

    def refuse_if_behind(self) -> None:
        """Raise a 503 ``overloaded`` (with ``retry_after_s``) when the node is behind.

        The API asks this before it reads a submission's body, and again when the body
        is in (:meth:`submission_slot`): a client that sends its body slowly holds no slot.
        """
        refused = shed(self.load(), self.limits)
        if refused is not None:
            self._refusals.add(time.monotonic())
            raise Rejected(
                ErrorCode.OVERLOADED,
                refused.message,
                503,
                extra={"retry_after_s": refused.retry_after, "signal": refused.signal},
            )

    @contextlib.contextmanager
    def submission_slot(self) -> Iterator[None]:
        """One submission in flight, from its read body to its answer (the in-flight bound
        is exact: the check and the count are one step)."""
        self.refuse_if_behind()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def submit(self, raw: bytes, *, parent_wait: float = PARENT_WAIT) -> Submitted:
        """Admit a fresh transaction and return once it is durable; parents not yet
        heard of are waited for up to ``parent_wait`` seconds.

        Raises:
            EncodingError: the bytes are not a transaction (§4.4).
            InvalidTransaction: a stateless rule is broken (§5).
            Rejected: this node does not admit it (unknown parent, conflicting, ...).
        """
        tx = decode(raw)
        if tx.id in self.tangle:
            await self.durable.wait(tx.id)
            return Submitted(tx.id, created=False)
        self._refuse_if_full(tx)
        timer = self.stages.timer()
        work = await asyncio.to_thread(validate_stateless, tx, self.params)
        timer.lap("validate")
        await self._parent_waits.wait(self.tangle.missing_parents_of(tx), parent_wait)
        timer.lap("parents")
        if tx.id in self.tangle:  # someone else submitted it meanwhile
            await self.durable.wait(tx.id)
            return Submitted(tx.id, created=False)
        self._refuse_if_full(tx)
        now = self.clock()
        verdict = self._admit(tx, work, now, parent_wait)
        self._attach(tx, now, verdict)
        self.rates.record(tx.issuer, now)
        # Peers hear of it at once: forwarding needs validity, not our disk (only the
        # acknowledgement below waits for the commit).
        for callback in self.on_new:
            callback(tx)
        timer.lap("attach")
        await self.durable.wait(tx.id)
        timer.lap("commit")
        timer.done()
        return Submitted(tx.id, created=True)

    def accept(self, tx: Transaction) -> AttachResult:
        """Attach a transaction a peer sent, already run through §5 by the caller.

        No admission rules here: a transaction already in the network is accepted on
        validity alone, so that its approvers can become solid (PROTOCOL §6.5, §8.3).
        At the ceiling of what the node holds it is not taken (``Outcome.REFUSED``):
        peers offer it again (inventories, requests) once a prune has made room.
        """
        if self.pruner.full(len(self.tangle)) and tx.issuer not in self._trusted:
            return AttachResult(Outcome.REFUSED)
        return self._attach(tx, self.clock())

    def _refuse_if_full(self, tx: Transaction) -> None:
        """A 503 at the ceiling of what the node holds (its own transactions pass)."""
        if self.pruner.full(len(self.tangle)) and tx.issuer not in self._trusted:
            self._refusals.add(time.monotonic())
            raise Rejected(
                ErrorCode.OVERLOADED,
                f"the node is overloaded (transactions held: expected fewer than "
                f"{self.pruner.ceiling}, got {len(self.tangle)}; pruning makes room): "
                "retry after 1 s",
                503,
                extra={"retry_after_s": 1, "signal": "held"},
            )

    def abandon(self, missing_ids: Iterable[TxId]) -> int:
        """Drop the buffered transactions waiting for ``missing_ids`` (parents nobody
        could serve), and what waited for those; returns how many went (PROTOCOL §7.2)."""
        return len(self.tangle.abandon(missing_ids))

    def _admit(self, tx: Transaction, work: int, now: float, waited: float) -> Verdict:
        """Admission (:func:`tangle.admission.admit`): the verdict, or Rejected."""
        if tx.issuer in self._trusted:
            required = self.params.required_difficulty(tx)  # the node trusts itself
        else:
            required = self.rates.required(self.params.base_difficulty, tx.size, tx.issuer, now)
        judged = admit(tx, self.tangle, self.engine.status, work=work, required=required)
        if isinstance(judged, Refusal):
            code, status = _REFUSALS[judged.reason]
            message = judged.message
            if judged.reason is RefusalReason.UNKNOWN_PARENT:
                message += f" (waited {waited:g} s): approve tips from GET /api/v1/tips"
            extra = {} if judged.reason is RefusalReason.UNKNOWN_PARENT else dict(judged.details)
            raise Rejected(code, message, status, extra=extra)
        return judged

    def _attach(self, tx: Transaction, now: float, verdict: Verdict | None = None) -> AttachResult:
        """The node's one way into the engine: attach a transaction already through §5,
        then index and persist whatever got attached (released descendants too)."""
        result = self.engine.attach_validated(tx, now, verdict)
        for tx_id in result.attached:
            attached = self.tangle.get(tx_id)
            self._index(attached, now)
            self.durable.write(attached.id, attached.encode(), now)
        if result.attached:
            self.pruner.arrived(len(self.tangle))  # past --max-transactions: prune now
        return result

    def _index(self, tx: Transaction, arrived: float) -> None:
        self._arrived[tx.id] = arrived
        self._parent_waits.arrived(tx.id)
        self._addresses.add(tx, self.tangle.ledger)
        self._recent.append(tx.id)
        if self.live:
            self.events.attached(tx, self.engine.conflict_reason(tx.id))
        self._arrivals.append(self.clock())

    # -- background loops (the node's own transactions: self.issuer, tangle.node.issuing) ------

    async def _confirm_loop(self) -> None:
        took = 0.0
        while True:
            await asyncio.sleep(max(self.config.confirm_interval, min(1.0, PASS_SHARE * took)))
            began = time.perf_counter()
            try:
                self.confirm()
            except ValueError as exc:  # nothing walkable yet
                log.debug("confirmation skipped: %s", exc)
            except Exception:  # a bug must not end confirmation for good, nor stay silent
                log.exception("confirmation pass failed")
            took = time.perf_counter() - began

    def confirm(self) -> list[TxId]:
        """One confirmation pass; stores and announces what it confirmed.

        Raises:
            ValueError: nothing is walkable yet.
        """
        newly = self.engine.confirm(self.rng, self.clock())
        self._confirmed(newly)
        return newly

    def _confirmed(self, newly: list[TxId]) -> None:
        if newly:
            self.store.confirm(list(newly), self.clock())  # a restart must not forget
        for tx_id in newly:
            tx = self.tangle.get(tx_id)
            self.events.confirmed(tx)
            for output_id in tx.inputs:
                for rival in self.tangle.ledger.spenders(output_id):
                    if rival != tx_id and rival not in self._announced_conflicts:
                        self._announced_conflicts.add(rival)
                        self.events.conflict(rival, self.engine.conflict_reason(rival))

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.liveness_interval)
            try:
                await self.issuer.keep_alive(list(self._recent), self.clock())
            except (tangle.TangleError, ValueError) as exc:  # ValueError: no tips
                log.warning("consolidation transaction failed: %s", exc)
            except Exception:  # a bug must not end liveness for good, nor stay silent
                log.exception("consolidation transaction failed")

    async def prune(self, now: float) -> int:
        """Prune now (:meth:`tangle.node.pruner.Pruner.prune`); returns how many went."""
        return await self.pruner.prune(now)

    def is_pruned(self, tx_id: TxId) -> bool:
        return self.pruner.is_pruned(tx_id)

    # -- what gossip asks of the node ------------------------------------------------------------

    def knows(self, tx_id: TxId) -> bool:
        """Attached, waiting for parents, or pruned into the snapshot: not to be asked for."""
        return (
            tx_id in self.tangle or self.tangle.is_buffered(tx_id) or self.pruner.is_pruned(tx_id)
        )

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

    # -- queries (the API's) ---------------------------------------------------------------------

    def get(self, tx_id: TxId) -> Transaction:
        try:
            return self.tangle.get(tx_id)
        except UnknownTransaction:
            raise Rejected(
                ErrorCode.NOT_FOUND, f"transaction {tx_id.hex()} is unknown", 404
            ) from None

    def status(self, tx_id: TxId) -> TxStatus | None:
        """§9, or None for an id this node does not hold."""
        return self.engine.status(tx_id) if tx_id in self.tangle else None

    def metadata(self, tx_id: TxId) -> TxMetadata:
        return self.engine.metadata(tx_id, self.clock())

    def counts(self) -> dict[str, int]:
        """Held transactions by status, and the tangle's figures (``/info``, ``/metrics``)."""
        return {
            **self.engine.counts(),
            "transactions": len(self.tangle),
            "tips": len(self.tangle.tips()),
            "unsolid": self.tangle.unsolid_count,
            "storage_commits": self.store.commits,
            "storage_rows": self.store.rows,
        }

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot this node's tangle starts from."""
        return self.tangle.snapshot

    def output(self, output_id: OutputId) -> Output | None:
        return self.tangle.ledger.output(output_id)

    def outputs_of(self, address: Address) -> list[tuple[OutputId, Output]]:
        return self._addresses.outputs_of(address, self.tangle.ledger)

    def output_status(self, output_id: OutputId) -> TxStatus:
        return balances.output_status(self.engine, output_id)

    def spent(self, output_id: OutputId, *, confirmed_only: bool) -> TxId | None:
        return balances.spender(self.engine, output_id, confirmed_only=confirmed_only)

    def balances(self, address: Address) -> tuple[int, int]:
        """(confirmed, pending) of ``address`` (tangle.balances)."""
        return balances.balances(self.engine, self.outputs_of(address))

    def throughput(self, window: float = 10.0) -> float:
        now = self.clock()
        return sum(1 for t in self._arrivals if now - t <= window) / window
