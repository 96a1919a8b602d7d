"""Devices for the throughput benchmark: payments prepared ahead, sent as devices send them.

A *plan* is one run's payments, built, signed and solved before the timed window (as
devices that prepare payments offline would): a funding chain from dev faucet 0, then
payment ``k`` due at ``k / rate`` seconds from device ``k mod devices``, which always
talks to the same node. Each payment spends its device's previous change and approves
what that node would have offered as tips when it is due: the oldest payment not yet
approved that was sent to the same node at least ``local_lag`` earlier, and such a
payment sent to another node at least ``remote_lag`` earlier (by then gossip has
brought it over, unless the network is behind); where every such payment is approved
already, one of the newest. When neither sees the device's previous payment, the
trunk is that payment itself (what ``GET /tips?approve=`` does for a wallet, §8.2), and
the tip it displaces goes back to the front of its queue for the next payment. A plan
keeps each payment as its encoded bytes (about 300 bytes, not the ~3 KB of a decoded
transaction), decoded when it is sent.

In the window each device sends its payments in order, each no earlier than it is due
and never two at once (the next spends the previous one's change):

- ``503 overloaded``: it waits as ``Retry-After`` says, with jitter (``tangle.retry``),
  within ``RETRY_PATIENCE``, and sends the same bytes again;
- ``422 unknown_parent`` (the node has not heard of a parent, even after waiting
  for it, 3 s by default): it asks its node for fresh tips that see its previous
  payment and *rebuilds* the payment on them (sign and proof of work again), up to
  ``REBUILDS`` times;
- a planned payment that can no longer be sent as planned is rebuilt at once, before
  it is sent: its predecessor was rebuilt or refused (the change it spends does not
  exist), or a parent is a *dead* planned payment (one that was rebuilt under a new id
  or refused for good, so no node will ever hear of it). A rebuilt payment's parents
  come from its node's own tips: it is sent with ``parent_wait=0``. Rebuilds are
  counted, with their cost;
- a client error (connection reset, timeout) is counted by kind and the same bytes
  are sent again after a backoff, within ``RETRY_PATIENCE``;
- anything else is a refusal, counted by reason. When the payment's fate is unknown
  (``503 storage_unavailable`` past patience: the node may still commit it; a client
  error past patience: it may have arrived), its coin may be spent already: the device
  stops rather than spend it again in another payment (a double spend), and its
  remaining payments are counted as ``stranded``.

Confirmations come from node 0's ``confirmations`` event stream (one websocket, not a
poll per payment), reconnected with backoff and ``since``; a gap is filled by asking for
the statuses of every payment sent; what is still unconfirmed at the end is asked for
once, and the confirmed ones merged (as confirmed late).

Counting (:func:`outcomes`): a payment counts when it was first sent inside the timed
window; it is *accepted* when acknowledged, and *confirmed in time* when its
confirmation came at most ``grace`` seconds after its acknowledgement. Rates divide by
the window's duration. Latency runs from the payment's first send (a rebuilt payment
keeps its first send) to its confirmation, never below 0.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson

from tangle import Keypair, OutputId, Transaction, TxId, build, decode
from tangle.address import Address
from tangle.node.genesis import DEV_BASE_DIFFICULTY, DEV_NETWORK_ID, dev_faucet_key, dev_genesis
from tangle.retry import RETRY_PATIENCE, retry_wait
from tangle.validation import NetworkParams
from tangle.window import WeightWindow

PARAMS = NetworkParams(network_id=DEV_NETWORK_ID, base_difficulty=DEV_BASE_DIFFICULTY)
GRANT = 10**9
"""What each device is funded with."""
PER_FUNDING = 120
"""Devices funded by one transaction."""
REBUILDS = 3
"""Fresh-tip rebuilds of one payment refused for an unknown parent, before giving up."""
REBUILT_PARENT_WAIT = 0.0
"""``parent_wait`` for a rebuilt payment: its parents are its own node's tips."""
CLIENT_BACKOFF = 0.2
"""Seconds before the first retry after a client error; doubled each time after."""
CLIENT_BACKOFF_MAX = 5.0
FOLLOW_RETRIES = 10
"""Reconnections of the confirmation stream in a row, without an event, before the run
fails (with backoff, about 30 s)."""

SAMPLE_EVERY = 5.0
"""Seconds between samples of the nodes' memory."""
CANDIDATES = 4
"""When every payment sent by then is approved already, a parent is one of this many
newest ones."""
PAYMENT_BYTES = 450
"""About what one planned payment holds in memory (its bytes, its record, its ids)."""

CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
T = TypeVar("T")


@dataclass(slots=True)
class Payment:
    due: float
    """Seconds after the window opens."""
    raw: bytes
    """The payment as planned, encoded (decoded when it is sent)."""
    id: TxId


@dataclass(slots=True)
class Device:
    key: Keypair
    node: int
    coin: OutputId
    value: int
    last: TxId
    """Its previous payment (its funding at first): what its next one must see."""
    payments: deque[Payment] = field(default_factory=deque)


@dataclass
class Plan:
    rate: float
    duration: float
    fundings: list[Transaction]
    devices: list[Device]
    """Each with its payments queued (:func:`drive` takes them: a plan runs once)."""
    raws: list[bytes]
    """Every payment in due order, encoded (the gossip ingest phase replays them)."""
    built_s: float
    """Seconds the prebuild took (outside the timed window)."""

    @property
    def count(self) -> int:
        return len(self.raws)

    @property
    def txs(self) -> list[Transaction]:
        """Every payment in due order, decoded (costly: for checks, not for runs)."""
        return [decode(raw) for raw in self.raws]


def change_of(tx: Transaction, address: Address) -> OutputId:
    index = next(i for i, o in enumerate(tx.outputs) if o.address == address)
    return OutputId(tx.id, index)


class TipQueue:
    """Payments sent to one node that nothing approves yet, oldest first, as that node's
    tip selection would offer them; and every payment sent to it, for the newest."""

    def __init__(self) -> None:
        self.unapproved: deque[tuple[float, TxId]] = deque()
        self.due: list[float] = []
        self.ids: list[TxId] = []

    def add(self, due: float, tx_id: TxId) -> None:
        self.unapproved.append((due, tx_id))
        self.due.append(due)
        self.ids.append(tx_id)

    def take(
        self, before: float, approved: set[TxId], rng: random.Random
    ) -> tuple[TxId | None, tuple[float, TxId] | None]:
        """The oldest unapproved payment sent by ``before`` (and its entry, taken from
        the queue), else one of the newest sent by then (and None), else (None, None)."""
        queue = self.unapproved
        while queue and queue[0][1] in approved:
            queue.popleft()
        if queue and queue[0][0] <= before:
            entry = queue.popleft()
            return entry[1], entry
        end = bisect.bisect_right(self.due, before)
        if end == 0:
            return None, None
        return self.ids[end - 1 - rng.randrange(min(CANDIDATES, end))], None

    def give_back(self, entry: tuple[float, TxId]) -> None:
        """A taken tip that was not used after all: offered first again."""
        self.unapproved.appendleft(entry)


def prebuild(
    rate: float,
    duration: float,
    *,
    devices: int,
    nodes: int,
    seed: int = 7,
    local_lag: float = 0.02,
    remote_lag: float = 0.05,
) -> Plan:
    """The payments of one run: ``rate * duration`` of them from ``devices`` devices
    spread over ``nodes`` nodes (see the module docstring)."""
    if devices < 2 or nodes < 1 or rate <= 0 or duration <= 0:
        raise ValueError("prebuild: devices >= 2, nodes >= 1, rate > 0 and duration > 0")
    began = time.perf_counter()
    rng = random.Random(seed)
    genesis = dev_genesis()
    faucet = dev_faucet_key(DEV_NETWORK_ID, 0)
    keys = [Keypair(rng.getrandbits(256).to_bytes(32, "big")) for _ in range(devices)]
    source = next(
        OutputId(genesis.id, i)
        for i, o in enumerate(genesis.outputs)
        if o.address == faucet.address
    )
    left = genesis.outputs[source.index].amount
    # The cone checks need ancestry of recent payments only: the bounded weight window.
    window = WeightWindow()
    window.add(genesis.id, (), time=0.0)
    fundings: list[Transaction] = []
    fleet: list[Device] = []
    parent = genesis.id
    for start in range(0, devices, PER_FUNDING):
        group = keys[start : start + PER_FUNDING]
        left -= GRANT * len(group)
        grants = {k.address: GRANT for k in group} | {faucet.address: left}
        funding = build(
            faucet,
            PARAMS,
            trunk=parent,
            branch=parent,
            timestamp=start,
            inputs=[source],
            payments=grants,
        )
        window.add(funding.id, (parent,), time=0.0)
        for key in group:
            d = len(fleet)
            fleet.append(Device(key, d % nodes, change_of(funding, key.address), GRANT, funding.id))
        source, parent = change_of(funding, faucet.address), funding.id
        fundings.append(funding)
    queues = [TipQueue() for _ in range(nodes)]
    approved: set[TxId] = set()
    coin = [(d.coin, d.value, d.last) for d in fleet]
    raws: list[bytes] = []
    for k in range(int(rate * duration)):
        due = k / rate
        d = k % devices
        device = fleet[d]
        oid, value, last = coin[d]
        other = (device.node + 1 + rng.randrange(nodes - 1)) % nodes if nodes > 1 else device.node
        trunk, taken = queues[device.node].take(due - local_lag, approved, rng)
        branch, _ = queues[other].take(due - remote_lag, approved, rng)
        trunk = trunk or fundings[-1].id
        branch = branch or fundings[-1].id
        if not _sees(window, last, trunk) and not _sees(window, last, branch):
            if taken is not None:
                queues[device.node].give_back(taken)
            trunk = last
        payee = keys[(d + 1 + rng.randrange(devices - 1)) % devices].address
        tx = build(
            device.key,
            PARAMS,
            trunk=trunk,
            branch=branch,
            timestamp=k,
            inputs=[oid],
            payments={payee: 1, device.key.address: value - 1},
        )
        window.add(tx.id, (trunk, branch), time=due)
        approved.update((trunk, branch))
        queues[device.node].add(due, tx.id)
        raw = tx.encode()
        device.payments.append(Payment(due, raw, tx.id))
        raws.append(raw)
        coin[d] = (change_of(tx, device.key.address), value - 1, tx.id)
    return Plan(rate, duration, fundings, fleet, raws, time.perf_counter() - began)


def _sees(window: WeightWindow, ancestor: TxId, tx_id: TxId) -> bool:
    if ancestor not in window or tx_id not in window:
        return False  # left the window: too old to count on
    return window.in_past_cone(window.slot(ancestor), window.slot(tx_id))


def payee_of(tx: Transaction, payer: Address) -> Address:
    return next(o.address for o in tx.outputs if o.address != payer)


# -- the node's API, as a device uses it ----------------------------------------------------


async def submit(
    session: aiohttp.ClientSession, api: str, tx: Transaction, parent_wait: float | None = None
) -> tuple[int, str, str | None]:
    """(HTTP status, error code or "", the ``Retry-After`` header or None)."""
    async with session.post(
        f"{api}/api/v1/transactions",
        params={} if parent_wait is None else {"parent_wait": f"{parent_wait:g}"},
        data=tx.encode(),
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        body = await response.read()
        code = ""
        if response.status >= 400:
            try:
                code = orjson.loads(body).get("error", {}).get("code", "")
            except (orjson.JSONDecodeError, AttributeError):
                code = f"non-JSON answer {body[:40]!r}"
        return response.status, code, response.headers.get("Retry-After")


async def statuses(
    session: aiohttp.ClientSession, api: str, ids: list[TxId]
) -> dict[TxId, str | None]:
    answer: dict[TxId, str | None] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        async with session.post(
            f"{api}/api/v1/transactions/statuses", json={"ids": [t.hex() for t in chunk]}
        ) as response:
            body = await response.json()
            if response.status != 200:  # a silent failure here once hid every confirmation
                raise RuntimeError(f"status query refused: {response.status} {body}")
        for t in chunk:
            answer[t] = body.get(t.hex())
    return answer


def parse_submit_stages(text: str) -> dict[str, float]:
    """Mean milliseconds per stage, from the ``tangle_submit_stage_seconds`` summary of
    a ``/metrics`` text (``_sum{stage="..."}`` and ``_count{stage="..."}`` lines)."""
    seconds: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("tangle_submit_stage_seconds_"):
            continue
        name, _, value = line.rpartition(" ")
        kind, _, labels = name.removeprefix("tangle_submit_stage_seconds_").partition("{")
        target = {"sum": seconds, "count": counts}.get(kind)
        if target is None or 'stage="' not in labels:
            continue
        target[labels.split('stage="', 1)[1].split('"', 1)[0]] = float(value)
    return {k: round(1000 * v / counts[k], 2) for k, v in seconds.items() if counts.get(k)}


async def submit_stages(session: aiohttp.ClientSession, api: str) -> dict[str, float]:
    """Mean milliseconds per stage of the node's accepted submissions (from /metrics)."""
    async with session.get(f"{api}/metrics") as response:
        return parse_submit_stages(await response.text())


async def fresh_tips(session: aiohttp.ClientSession, api: str, approve: TxId) -> tuple[TxId, TxId]:
    """Tips from the node that see ``approve`` (plain tips when it is no longer live)."""
    async with session.get(f"{api}/api/v1/tips", params={"approve": approve.hex()}) as response:
        body = await response.json()
    if response.status != 200:
        async with session.get(f"{api}/api/v1/tips") as response:
            body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"tips refused: {response.status} {body}")
    return TxId(bytes.fromhex(body["trunk"])), TxId(bytes.fromhex(body["branch"]))


def client_error_kind(exc: BaseException) -> str:
    """The key a client error is counted under: ``client_error:<exception class>``."""
    return f"client_error:{type(exc).__name__}"


def client_backoff(attempt: int, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (0, 1, ...) after a client error:
    doubling from ``CLIENT_BACKOFF`` up to ``CLIENT_BACKOFF_MAX``, with jitter."""
    return min(CLIENT_BACKOFF_MAX, CLIENT_BACKOFF * 2**attempt) * rng.uniform(0.5, 1.5)


def fate_unknown(status: int, code: str) -> bool:
    """After this final answer, may the node still have taken (or take) the payment?
    ``status`` 0 stands for no answer at all (a client error)."""
    if status == 0 or code == "storage_unavailable":
        return True
    return status >= 500 and code != "overloaded"


# -- one timed run -----------------------------------------------------------------------------


@dataclass
class Tally:
    first_sent: dict[TxId, float] = field(default_factory=dict)
    """Payments sent, in flight or acknowledged, by the id last sent: when the payment
    was first sent (monotonic; a rebuilt payment keeps its first send)."""
    acked: dict[TxId, float] = field(default_factory=dict)
    """Accepted payments and when the node acknowledged them (monotonic)."""
    confirmed: dict[TxId, float] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)
    """Every client error, retried or not, by kind (submissions, tips, the stream)."""
    dead: set[TxId] = field(default_factory=set)
    """Planned ids that no node will hear of: rebuilt under a new id, or refused."""
    deferred: int = 0
    deferred_s: float = 0.0
    rebuilt: int = 0
    rebuilt_s: float = 0.0
    rebuilt_before_sending: int = 0
    """Of ``rebuilt``: planned payments rebuilt before their first send (a dead parent
    or a predecessor that was rebuilt or refused)."""
    unsent: int = 0
    """Payments due in the window that their device could not start before it closed
    (it was still busy with earlier ones)."""
    unknown_fate: int = 0
    """Payments given up on without knowing whether a node took them: their device
    stopped there."""
    stranded: int = 0
    """Payments not sent because their device stopped after an unknown fate."""
    attempted: int = 0
    confirmation_times: list[float] = field(default_factory=list)

    def refuse(self, key: str) -> None:
        self.refused[key] = self.refused.get(key, 0) + 1

    def client_error(self, exc: BaseException) -> str:
        kind = client_error_kind(exc)
        self.client_errors[kind] = self.client_errors.get(kind, 0) + 1
        return kind


async def _with_retries(
    call: Callable[[], Awaitable[T]], tally: Tally, jitter: random.Random, patience: float
) -> T:
    """``call()``, again after client errors (counted), with backoff, until ``patience``
    (monotonic); then the last client error is raised."""
    attempt = 0
    while True:
        try:
            return await call()
        except CLIENT_ERRORS as exc:
            tally.client_error(exc)
            wait = client_backoff(attempt, jitter)
            attempt += 1
            if time.monotonic() + wait > patience:
                raise
            await asyncio.sleep(wait)


async def _confirmations(api: str, tally: Tally, stop: asyncio.Event) -> None:
    """Follow node 0's confirmations, reconnecting with backoff and ``since``; on a gap
    (we were too slow), or a reconnection before any event, ask for statuses."""
    since: int | str | None = None
    failures = 0
    rng = random.Random(5)
    async with aiohttp.ClientSession() as session:

        async def fill() -> None:
            """Statuses of what has no confirmation yet; those confirmed are stamped now
            (an upper bound: they may have confirmed while the stream was away)."""
            waiting = [t for t in tally.first_sent if t not in tally.confirmed]
            now = time.monotonic()
            for t, s in (await statuses(session, api, waiting)).items():
                if s == "confirmed":
                    tally.confirmed.setdefault(t, now)

        while not stop.is_set():
            query = "topics=confirmations" + (f"&since={since}" if since is not None else "")
            try:
                async with session.ws_connect(f"{api}/api/v1/events?{query}") as ws:
                    if failures and since is None:
                        await fill()  # what confirmed while we were away
                    async for msg in ws:
                        if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                            break
                        failures = 0
                        event = orjson.loads(msg.data)
                        if "seq" not in event:  # a gap notice: fill in by asking
                            await fill()
                            continue
                        epoch = event.get("epoch")  # EPOCH:SEQ: a restart is a gap notice
                        since = f"{epoch}:{event['seq']}" if epoch else event["seq"]
                        now = time.monotonic()
                        tally.confirmation_times.append(now)
                        tx_id = TxId(bytes.fromhex(event["data"]["id"]))
                        if tx_id in tally.first_sent or tx_id in tally.acked:
                            tally.confirmed.setdefault(tx_id, now)
                        if stop.is_set():
                            break
            except CLIENT_ERRORS as exc:
                tally.client_error(exc)
            if stop.is_set():
                break
            if failures >= FOLLOW_RETRIES:
                raise RuntimeError(f"confirmation stream lost: {failures} reconnections failed")
            await asyncio.sleep(client_backoff(failures, rng))
            failures += 1


def _raise_if_failed(task: asyncio.Task[Any], what: str) -> None:
    """Raise what ended ``task`` (done, not cancelled): its error, or that it ended."""
    if task.done() and not task.cancelled():
        exc = task.exception()
        raise exc if exc is not None else RuntimeError(f"{what} ended early")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (NaN where /proc is not there)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


async def drive(
    plan: Plan,
    apis: list[str],
    *,
    pids: Sequence[int] = (),
    minutes: bool = False,
    grace: float = 5.0,
    jitter: random.Random | None = None,
) -> dict[str, Any]:
    """Fund the fleet, run the plan's window, wait until ``grace`` after the last
    acknowledgement for confirmations; the figures of the run. ``pids``: node processes
    whose memory is sampled every ``SAMPLE_EVERY`` seconds; ``minutes``: figures per
    minute too (a soak)."""
    jitter = jitter or random.Random(11)
    tally = Tally()
    samples: list[tuple[float, list[float]]] = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), [rss_mb(p) for p in pids]))
            await asyncio.sleep(SAMPLE_EVERY)

    timeout = aiohttp.ClientTimeout(total=RETRY_PATIENCE)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for funding in plan.fundings:
            status, code, _ = await submit(session, apis[0], funding)
            if status not in (200, 201):
                raise RuntimeError(f"funding refused: {status} {code}")
        last = plan.fundings[-1].id
        while (await statuses(session, apis[0], [last]))[last] != "confirmed":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stop = asyncio.Event()
        follower = asyncio.create_task(_confirmations(apis[0], tally, stop))
        await asyncio.sleep(0.2)  # the stream is open before the first payment
        _raise_if_failed(follower, "the confirmation stream")
        began = time.monotonic()
        window_end = began + plan.duration
        sampler = asyncio.create_task(sample())

        def give_up(device: Device) -> None:
            """The device sends no more: what approves its payments is rebuilt first."""
            tally.dead.update(p.id for p in device.payments)
            device.payments.clear()

        async def run_device(device: Device) -> None:
            api = apis[device.node]
            while device.payments:
                payment = device.payments.popleft()
                delay = began + payment.due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() >= window_end:
                    tally.unsent += 1 + len(device.payments)
                    tally.dead.add(payment.id)
                    give_up(device)
                    return
                tally.attempted += 1
                if not await _pay(session, api, device, payment, tally, jitter):
                    tally.stranded += len(device.payments)
                    give_up(device)
                    return

        devices = asyncio.ensure_future(asyncio.gather(*(run_device(d) for d in plan.devices)))
        await asyncio.wait({devices, follower}, return_when=asyncio.FIRST_COMPLETED)
        if not devices.done():  # the follower failed mid-run: the run's figures are void
            devices.cancel()
            sampler.cancel()
            await asyncio.gather(devices, sampler, return_exceptions=True)
            _raise_if_failed(follower, "the confirmation stream")
        devices.result()  # a device's error ends the run
        sent_by = time.monotonic()
        deadline = max(tally.acked.values(), default=sent_by) + grace
        pending = [t for t in tally.acked if t not in tally.confirmed]
        while pending and time.monotonic() < deadline:
            _raise_if_failed(follower, "the confirmation stream")
            await asyncio.sleep(0.1)
            pending = [t for t in pending if t not in tally.confirmed]
        _raise_if_failed(follower, "the confirmation stream")
        stop.set()
        follower.cancel()
        sampler.cancel()
        for outcome in await asyncio.gather(follower, sampler, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome
        stages = [await submit_stages(session, api) for api in apis]
        waiting = [t for t in tally.acked if t not in tally.confirmed]
        unconfirmed: dict[str, int] = {}
        asked = time.monotonic()
        for t, s in (await statuses(session, apis[0], waiting)).items():
            if s == "confirmed":  # confirmed after all, though after the grace: late
                tally.confirmed.setdefault(t, asked)
            else:
                unconfirmed[s or "unknown"] = unconfirmed.get(s or "unknown", 0) + 1
    figures = _figures(plan, tally, began, sent_by, grace, unconfirmed)
    figures["rss_mb"] = samples[-1][1] if samples else []
    figures["submit_stage_ms"] = stages
    if minutes:
        figures["minutes"] = _per_minute(plan.duration, tally, began, samples)
    return figures


def _per_minute(
    duration: float, tally: Tally, began: float, samples: list[tuple[float, list[float]]]
) -> list[dict[str, Any]]:
    rows = []
    for m in range(int(duration // 60)):
        start, end = began + 60 * m, began + 60 * (m + 1)
        confirmed = sum(
            1 for t, at in tally.confirmed.items() if start <= at < end and t in tally.acked
        )
        inside = [rss for at, rss in samples if start <= at < end]
        rows.append(
            {
                "minute": m + 1,
                "confirmed_tps": round(confirmed / 60, 1),
                "rss_mb": inside[-1] if inside else [],
            }
        )
    return rows


async def _pay(
    session: aiohttp.ClientSession,
    api: str,
    device: Device,
    payment: Payment,
    tally: Tally,
    jitter: random.Random,
) -> bool:
    """Send one payment until it is accepted or refused for good. False when its fate
    is unknown: the device must not spend from its chain again."""
    first = time.monotonic()
    patience = first + RETRY_PATIENCE
    planned = decode(payment.raw)
    payee = payee_of(planned, device.key.address)
    tx = planned
    parent_wait: float | None = None  # the node's default: others' payments may be on the way
    if needs_rebuild(planned, device.coin, tally.dead):
        tally.dead.add(planned.id)
        try:
            tx = await _rebuild(session, api, device, payee, tally, jitter, patience)
        except CLIENT_ERRORS as exc:  # nothing was sent: the coin is still the device's
            tally.refuse(client_error_kind(exc))
            return True
        tally.rebuilt_before_sending += 1
        parent_wait = REBUILT_PARENT_WAIT
        first = time.monotonic()  # latency counts from the send, not from the rebuild
    rebuilds = 0
    attempt = 0
    tally.first_sent[tx.id] = first
    while True:
        try:
            status, code, later = await submit(session, api, tx, parent_wait)
        except CLIENT_ERRORS as exc:  # the same bytes again: idempotent
            kind = tally.client_error(exc)
            wait = client_backoff(attempt, jitter)
            attempt += 1
            if time.monotonic() + wait <= patience:
                await asyncio.sleep(wait)
                continue
            status, code = 0, kind
            break
        wait = retry_wait(status, code, later, jitter, idempotent=True)
        if wait is not None and time.monotonic() + wait <= patience:
            tally.deferred += 1  # overloaded: come back as asked, with jitter
            tally.deferred_s += wait
            await asyncio.sleep(wait)
            continue
        if code == "unknown_parent" and rebuilds < REBUILDS:
            rebuilds += 1
            tally.dead.add(planned.id)
            del tally.first_sent[tx.id]
            try:
                tx = await _rebuild(session, api, device, payee, tally, jitter, patience)
            except CLIENT_ERRORS as exc:  # the refused one was not taken: the coin is free
                tally.refuse(client_error_kind(exc))
                return True
            tally.first_sent[tx.id] = first
            parent_wait = REBUILT_PARENT_WAIT
            continue
        break
    if status in (200, 201):
        tally.acked[tx.id] = time.monotonic()
        device.coin = change_of(tx, device.key.address)
        device.value -= 1
        device.last = tx.id
        return True
    tally.dead.add(planned.id)
    tally.first_sent.pop(tx.id, None)
    tally.refuse(code if status == 0 else f"{status} {code}")
    if fate_unknown(status, code):
        tally.unknown_fate += 1
        return False
    return True


def needs_rebuild(planned: Transaction, coin: OutputId, dead: set[TxId]) -> bool:
    """Can ``planned`` not be sent as planned: it spends a coin that is not the device's
    (its predecessor was rebuilt or refused), or approves a payment no node will hear of?"""
    return planned.inputs != (coin,) or planned.trunk in dead or planned.branch in dead


async def _rebuild(
    session: aiohttp.ClientSession,
    api: str,
    device: Device,
    payee: Address,
    tally: Tally,
    jitter: random.Random,
    patience: float,
) -> Transaction:
    """The payment again, spending the device's coin, on tips fresh from its node."""
    began = time.perf_counter()
    until = max(patience, time.monotonic())
    trunk, branch = await _with_retries(
        lambda: fresh_tips(session, api, device.last), tally, jitter, until
    )
    tx = build(
        device.key,
        PARAMS,
        trunk=trunk,
        branch=branch,
        timestamp=int(time.time() * 1000),
        inputs=[device.coin],
        payments={payee: 1, device.key.address: device.value - 1},
    )
    tally.rebuilt += 1
    tally.rebuilt_s += time.perf_counter() - began
    return tx


@dataclass
class Outcomes:
    """Payments first sent in a window, by what became of them (see :func:`outcomes`)."""

    accepted: list[TxId]
    confirmed: list[TxId]
    """Confirmed at most ``grace`` after their acknowledgement."""
    late: list[TxId]
    """Confirmed, but later than that."""
    never: list[TxId]
    """Accepted and never seen confirmed."""
    latency_ms: list[float]
    """First send to confirmation of ``confirmed``, sorted, each at least 0."""
    ack_latency_ms: list[float]
    """Acknowledgement to confirmation of ``confirmed``, sorted, each at least 0."""


def outcomes(
    first_sent: Mapping[TxId, float],
    acked: Mapping[TxId, float],
    confirmed: Mapping[TxId, float],
    began: float,
    end: float,
    grace: float,
) -> Outcomes:
    """What became of the payments first sent in ``[began, end)``: accepted ones
    (acknowledged, whenever), confirmed ones (within ``grace`` of their acknowledgement),
    late and never confirmed ones; latencies from the first send, clamped at 0."""
    accepted = [t for t, at in acked.items() if began <= first_sent.get(t, at) < end]
    in_time: list[TxId] = []
    late: list[TxId] = []
    never: list[TxId] = []
    for t in accepted:
        at = confirmed.get(t)
        if at is None:
            never.append(t)
        elif at <= acked[t] + grace:
            in_time.append(t)
        else:
            late.append(t)
    latency = sorted(max(0.0, confirmed[t] - first_sent.get(t, acked[t])) * 1000 for t in in_time)
    ack_latency = sorted(max(0.0, confirmed[t] - acked[t]) * 1000 for t in in_time)
    return Outcomes(accepted, in_time, late, never, latency, ack_latency)


def _figures(
    plan: Plan,
    tally: Tally,
    began: float,
    sent_by: float,
    grace: float,
    unconfirmed: dict[str, int],
) -> dict[str, Any]:
    duration = plan.duration
    end = began + duration
    seen = outcomes(tally.first_sent, tally.acked, tally.confirmed, began, end, grace)
    accepted, confirmed = len(seen.accepted), len(seen.confirmed)
    return {
        "offered_tps": round(plan.rate, 1),
        "attempted": tally.attempted,
        "counts": {
            "offered": plan.count,
            "accepted": accepted,
            "confirmed": confirmed,
            "confirmed_late": len(seen.late),
            "never_confirmed": len(seen.never),
            "acked_after_window": sum(1 for t in seen.accepted if tally.acked[t] >= end),
        },
        "accepted_tps": round(accepted / duration, 1),
        "confirmed_tps": round(confirmed / duration, 1),
        "confirmation_rate": round(confirmed / max(1, accepted), 4),
        "latency_ms": percentiles(seen.latency_ms),
        "ack_to_confirmation_ms": percentiles(seen.ack_latency_ms),
        "refused": dict(sorted(tally.refused.items())),
        "client_errors": dict(sorted(tally.client_errors.items())),
        "unconfirmed": unconfirmed,
        "deferred": {"answers": tally.deferred, "seconds": round(tally.deferred_s, 1)},
        "rebuilt": {
            "payments": tally.rebuilt,
            "before_sending": tally.rebuilt_before_sending,
            "seconds": round(tally.rebuilt_s, 2),
            "ms_each": round(tally.rebuilt_s * 1000 / tally.rebuilt, 2) if tally.rebuilt else 0.0,
        },
        "unsent": tally.unsent,
        "unknown_fate": tally.unknown_fate,
        "stranded": tally.stranded,
        "sending_s": round(sent_by - began, 2),
        "longest_confirmation_pause_s": longest_pause(tally.confirmation_times),
        "prebuilt": {"payments": plan.count, "seconds": round(plan.built_s, 1)},
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99 of sorted ``values`` (NaN when there are none)."""

    def pct(q: float) -> float:
        if not values:
            return math.nan
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)}


def longest_pause(times: list[float]) -> float:
    """The longest gap between consecutive confirmation events, in seconds."""
    return round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 2)
