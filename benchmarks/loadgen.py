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
trunk is that payment itself (what ``GET /tips?approve=`` does for a wallet, §8.2).

In the window each device sends its payments in order, each no earlier than it is due
and never two at once (the next spends the previous one's change):

- ``503 overloaded``: it waits as ``Retry-After`` says, with jitter (``tangle.retry``),
  within ``RETRY_PATIENCE``, and sends the same bytes again;
- ``422 unknown_parent`` (the node has not heard of a parent, even after waiting
  for it, 3 s by default): it asks its node for fresh tips that see its previous
  payment and *rebuilds* the payment on them (sign and proof of work again), up to
  ``REBUILDS`` times; a
  payment whose predecessor was rebuilt or refused is rebuilt too, since it spent a
  change output that no longer exists. Rebuilds are counted, with their cost;
- anything else is a refusal, counted by reason.

Confirmations come from node 0's ``confirmations`` event stream (one websocket, not a
poll per payment); what is still unconfirmed at the end is asked for once.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tangle import Keypair, OutputId, Transaction, TxId, build
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

SAMPLE_EVERY = 5.0
"""Seconds between samples of the nodes' memory."""
CANDIDATES = 4
"""When every payment sent by then is approved already, a parent is one of this many
newest ones."""


@dataclass(slots=True)
class Payment:
    due: float
    """Seconds after the window opens."""
    tx: Transaction
    payee: Address


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
    txs: list[Transaction]
    """Every payment in due order (the gossip ingest phase replays them)."""
    built_s: float
    """Seconds the prebuild took (outside the timed window)."""

    @property
    def count(self) -> int:
        return len(self.txs)


def change_of(tx: Transaction, address: Address) -> OutputId:
    index = next(i for i, o in enumerate(tx.outputs) if o.address == address)
    return OutputId(tx.id, index)


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
    # Per node: when its payments are due, and their ids (due order).
    sent_due: list[list[float]] = [[] for _ in range(nodes)]
    sent_id: list[list[TxId]] = [[] for _ in range(nodes)]
    coin = [(d.coin, d.value, d.last) for d in fleet]
    txs: list[Transaction] = []

    unapproved: list[deque[tuple[float, TxId]]] = [deque() for _ in range(nodes)]
    approved: set[TxId] = set()

    def tip(node: int, before: float) -> TxId | None:
        """The oldest payment sent to ``node`` by ``before`` that nothing approves yet
        (as a node's tip selection would offer), else one of the newest sent by then."""
        queue = unapproved[node]
        while queue and queue[0][1] in approved:
            queue.popleft()
        if queue and queue[0][0] <= before:
            return queue.popleft()[1]
        end = bisect.bisect_right(sent_due[node], before)
        if end == 0:
            return None
        return sent_id[node][end - 1 - rng.randrange(min(CANDIDATES, end))]

    for k in range(int(rate * duration)):
        due = k / rate
        d = k % devices
        device = fleet[d]
        oid, value, last = coin[d]
        other = (device.node + 1 + rng.randrange(nodes - 1)) % nodes if nodes > 1 else device.node
        trunk = tip(device.node, due - local_lag) or fundings[-1].id
        branch = tip(other, due - remote_lag) or fundings[-1].id
        if not _sees(window, last, trunk) and not _sees(window, last, branch):
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
        sent_due[device.node].append(due)
        sent_id[device.node].append(tx.id)
        unapproved[device.node].append((due, tx.id))
        device.payments.append(Payment(due, tx, payee))
        txs.append(tx)
        coin[d] = (change_of(tx, device.key.address), value - 1, tx.id)
    return Plan(rate, duration, fundings, fleet, txs, time.perf_counter() - began)


def _sees(window: WeightWindow, ancestor: TxId, tx_id: TxId) -> bool:
    if ancestor not in window or tx_id not in window:
        return False  # left the window: too old to count on
    return window.in_past_cone(window.slot(ancestor), window.slot(tx_id))


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


async def submit_stages(session: aiohttp.ClientSession, api: str) -> dict[str, float]:
    """Mean milliseconds per stage of the node's accepted submissions (from /metrics)."""
    async with session.get(f"{api}/metrics") as response:
        text = await response.text()
    seconds: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tangle_submit_stage_seconds_"):
            name, value = line.split()
            stage = name.split('"')[1]
            target = seconds if "_sum{" in name else counts
            target[stage] = float(value)
    return {k: round(1000 * v / counts[k], 2) for k, v in seconds.items() if counts.get(k)}


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


# -- one timed run -----------------------------------------------------------------------------


@dataclass
class Tally:
    acked: dict[TxId, float] = field(default_factory=dict)
    """Accepted payments and when the node acknowledged them (monotonic)."""
    first_sent: dict[TxId, float] = field(default_factory=dict)
    confirmed: dict[TxId, float] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    deferred_s: float = 0.0
    rebuilt: int = 0
    rebuilt_s: float = 0.0
    unsent: int = 0
    """Payments due in the window that their device could not start before it closed
    (it was still busy with earlier ones)."""
    attempted: int = 0
    confirmation_times: list[float] = field(default_factory=list)

    def refuse(self, key: str) -> None:
        self.refused[key] = self.refused.get(key, 0) + 1


async def _confirmations(api: str, tally: Tally, stop: asyncio.Event) -> None:
    """Follow node 0's confirmations; on a gap (we were too slow) ask for statuses."""
    since: int | None = None
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            query = "topics=confirmations" + (f"&since={since}" if since is not None else "")
            async with session.ws_connect(f"{api}/api/v1/events?{query}") as ws:
                async for msg in ws:
                    if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                        break
                    event = orjson.loads(msg.data)
                    if "seq" not in event:  # a gap notice: fill in by asking
                        waiting = [t for t in tally.acked if t not in tally.confirmed]
                        now = time.monotonic()
                        for t, s in (await statuses(session, api, waiting)).items():
                            if s == "confirmed":
                                tally.confirmed[t] = now
                        continue
                    since = event["seq"]
                    now = time.monotonic()
                    tally.confirmation_times.append(now)
                    tx_id = TxId(bytes.fromhex(event["data"]["id"]))
                    if tx_id in tally.acked or tx_id in tally.first_sent:
                        tally.confirmed.setdefault(tx_id, now)
                    if stop.is_set():
                        break


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
    """Fund the fleet, run the plan's window, wait ``grace`` for confirmations; the
    figures of the run. ``pids``: node processes whose memory is sampled every
    ``SAMPLE_EVERY`` seconds; ``minutes``: figures per minute too (a soak)."""
    jitter = jitter or random.Random(11)
    tally = Tally()
    samples: list[tuple[float, list[float]]] = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), [rss_mb(p) for p in pids]))
            await asyncio.sleep(SAMPLE_EVERY)

    timeout = aiohttp.ClientTimeout(total=60)
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
        began = time.monotonic()
        window_end = began + plan.duration
        sampler = asyncio.create_task(sample())

        async def run_device(device: Device) -> None:
            api = apis[device.node]
            while device.payments:
                payment = device.payments.popleft()
                delay = began + payment.due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() >= window_end:
                    tally.unsent += 1 + len(device.payments)
                    device.payments.clear()
                    return
                tally.attempted += 1
                await _pay(session, api, device, payment, tally, jitter)

        await asyncio.gather(*(run_device(d) for d in plan.devices))
        sent_by = time.monotonic()
        while time.monotonic() < sent_by + grace and len(tally.confirmed) < len(tally.acked):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stop.set()
        follower.cancel()
        sampler.cancel()
        await asyncio.gather(follower, sampler, return_exceptions=True)
        stages = [await submit_stages(session, api) for api in apis]
        waiting = [t for t in tally.acked if t not in tally.confirmed]
        unconfirmed: dict[str, int] = {}
        for s in (await statuses(session, apis[0], waiting)).values():
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
) -> None:
    tx = payment.tx
    if tx.inputs != (device.coin,):  # its predecessor was rebuilt or refused
        tx = await _rebuild(session, api, device, payment, tally)
    patience = time.monotonic() + RETRY_PATIENCE
    rebuilds = 0
    tally.first_sent[tx.id] = time.monotonic()
    while True:
        status, code, later = await submit(session, api, tx)
        wait = retry_wait(status, code, later, jitter, idempotent=True)
        if wait is not None and time.monotonic() + wait <= patience:
            tally.deferred += 1  # overloaded: come back as asked, with jitter
            tally.deferred_s += wait
            await asyncio.sleep(wait)
            continue
        if code == "unknown_parent" and rebuilds < REBUILDS:
            rebuilds += 1
            first = tally.first_sent.pop(tx.id)
            tx = await _rebuild(session, api, device, payment, tally)
            tally.first_sent[tx.id] = first
            continue
        break
    if status in (200, 201):
        tally.acked[tx.id] = time.monotonic()
        device.coin = change_of(tx, device.key.address)
        device.value -= 1
        device.last = tx.id
    else:
        tally.first_sent.pop(tx.id, None)
        tally.refuse(f"{status} {code}")


async def _rebuild(
    session: aiohttp.ClientSession, api: str, device: Device, payment: Payment, tally: Tally
) -> Transaction:
    """The payment again, spending the device's coin, on tips fresh from its node."""
    began = time.perf_counter()
    trunk, branch = await fresh_tips(session, api, device.last)
    tx = build(
        device.key,
        PARAMS,
        trunk=trunk,
        branch=branch,
        timestamp=int(time.time() * 1000),
        inputs=[device.coin],
        payments={payment.payee: 1, device.key.address: device.value - 1},
    )
    tally.rebuilt += 1
    tally.rebuilt_s += time.perf_counter() - began
    return tx


def _figures(
    plan: Plan,
    tally: Tally,
    began: float,
    sent_by: float,
    grace: float,
    unconfirmed: dict[str, int],
) -> dict[str, Any]:
    duration = plan.duration
    deadline = began + duration + grace
    in_time = [t for t, at in tally.confirmed.items() if at <= deadline and t in tally.acked]
    latencies = sorted((tally.confirmed[t] - tally.acked[t]) * 1000 for t in in_time)
    end_to_end = sorted((tally.confirmed[t] - tally.first_sent[t]) * 1000 for t in in_time)
    accepted = len(tally.acked)
    return {
        "offered_tps": round(plan.rate, 1),
        "attempted": tally.attempted,
        "accepted_tps": round(accepted / duration, 1),
        "confirmed_tps": round(len(in_time) / duration, 1),
        "confirmation_rate": round(len(in_time) / max(1, accepted), 4),
        "latency_ms": percentiles(latencies),
        "end_to_end_ms": percentiles(end_to_end),
        "refused": dict(sorted(tally.refused.items())),
        "unconfirmed": unconfirmed,
        "deferred": {"answers": tally.deferred, "seconds": round(tally.deferred_s, 1)},
        "rebuilt": {
            "payments": tally.rebuilt,
            "seconds": round(tally.rebuilt_s, 2),
            "ms_each": round(tally.rebuilt_s * 1000 / tally.rebuilt, 2) if tally.rebuilt else 0.0,
        },
        "unsent": tally.unsent,
        "sending_s": round(sent_by - began, 2),
        "longest_confirmation_pause_s": longest_pause(tally.confirmation_times),
        "prebuilt": {"payments": plan.count, "seconds": round(plan.built_s, 1)},
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99 of sorted ``values`` (NaN when there are none)."""

    def pct(q: float) -> float:
        if not values:
            return float("nan")
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)}


def longest_pause(times: list[float]) -> float:
    """The longest gap between consecutive confirmation events, in seconds."""
    return round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 2)
