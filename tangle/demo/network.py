"""The network demo: a devnet of real nodes, and devices paying each other through it.

A car pays a charger per kWh and posts signed meter readings, a buyer pays a sensor
per KiB, the charger settles with the grid. Each device talks to one node's HTTP API
(spread over the devnet), builds and signs its own transactions, and approves its own
previous payment so its change is always in view. Every second a line shows what was
submitted, what every node confirmed, confirmation latency, and the balances.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tangle.address import Address, encode_address
from tangle.builder import build, payments_with_change, select_inputs
from tangle.ledger import ConflictReason
from tangle.node.devnet import Devnet, start_devnet
from tangle.node.genesis import DEV_BASE_DIFFICULTY, DEV_NETWORK_ID
from tangle.retry import RETRY_PATIENCE, retry_wait
from tangle.schema import ErrorCode, Status
from tangle.signing import Keypair
from tangle.transaction import OutputId, TxId
from tangle.validation import NetworkParams

PARAMS = NetworkParams(network_id=DEV_NETWORK_ID, base_difficulty=DEV_BASE_DIFFICULTY)
STALE_VIEW = ConflictReason.INPUT_NOT_IN_CONE.name.lower()
"""The conflict reason of a payment whose tips do not see its coins: fresh tips mend it."""
PRICE_PER_KWH = 25
PRICE_PER_KIB = 2


@dataclass
class Device:
    name: str
    key: Keypair
    api: str
    coins: dict[OutputId, int] = field(default_factory=dict)
    spent: set[OutputId] = field(default_factory=set)
    last: TxId | None = None
    sent: int = 0

    @property
    def address(self) -> Address:
        return self.key.address


@dataclass
class Stats:
    submitted: dict[TxId, float] = field(default_factory=dict)
    confirmed_after: dict[TxId, float] = field(default_factory=dict)
    refused: int = 0
    retried: int = 0
    """Requests asked again after an overloaded node's ``Retry-After``."""


class NetworkDemo:
    def __init__(self, devnet: Devnet, session: aiohttp.ClientSession, seed: int) -> None:
        self.devnet = devnet
        self.session = session
        self.rng = random.Random(seed)
        apis = devnet.apis
        names = ["grid", "charger", "car", "sensor", "buyer"]
        self.devices = {
            name: Device(
                name, Keypair(self.rng.getrandbits(256).to_bytes(32, "big")), apis[i % len(apis)]
            )
            for i, name in enumerate(names)
        }
        self.stats = Stats()
        self.meter_wh = 0
        self.paid_wh = 0

    async def json(self, method: str, url: str, body: object = None) -> tuple[int, dict]:  # type: ignore[type-arg]
        """One request; a 503 ``overloaded`` (nothing done yet) is asked again after its
        ``Retry-After`` times a random factor in [0.5, 1.5), for up to 30 s."""
        deadline = time.monotonic() + RETRY_PATIENCE  # a faucet request is not repeated after
        # a failed commit (idempotent=False): the node may have paid
        while True:
            async with self.session.request(method, url, json=body) as response:
                later = response.headers.get("Retry-After")
                answer = await response.json()
                code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
                wait = retry_wait(response.status, code, later, self.rng, idempotent=False)
                if wait is None:
                    return response.status, answer
            if time.monotonic() + wait > deadline:
                return response.status, answer  # the node's own words, once patience is out
            self.stats.retried += 1
            await asyncio.sleep(wait)

    async def fund(self) -> None:
        for i, (name, amount) in enumerate((("car", 20_000), ("buyer", 5_000))):
            device = self.devices[name]
            api = self.devnet.apis[i % len(self.devnet.apis)]
            status, body = await self.json(
                "POST",
                f"{api}/api/v1/faucet",
                {"address": encode_address(device.address), "amount": str(amount)},
            )
            if status != 201:
                raise RuntimeError(f"faucet refused: {body}")
            self.stats.submitted[TxId(bytes.fromhex(body["id"]))] = time.monotonic()

    async def refresh(self, device: Device) -> None:
        status, body = await self.json(
            "GET", f"{device.api}/api/v1/addresses/{encode_address(device.address)}"
        )
        if status != 200:
            return
        for out in body["outputs"]:
            oid = OutputId.from_hex(out["output_id"])
            if not out["spent"] and Status(out["status"]).live and oid not in device.spent:
                device.coins[oid] = int(out["amount"])

    async def pay(
        self, payer: Device, payee: Device | None, amount: int, payload: bytes = b""
    ) -> bool:
        inputs: list[OutputId] = []
        total = 0
        if payee is not None:
            await self.refresh(payer)
            inputs, total = select_inputs(payer.coins.items(), amount)
            if total < amount:
                return False
        payments: dict[Address, int] = {}
        if payee is not None:
            payments = payments_with_change(payee.address, amount, payer.address, total)
        for attempt in range(2):
            status, tips = await self.json("GET", f"{payer.api}/api/v1/tips")
            trunk = TxId(bytes.fromhex(tips["trunk"]))
            branch = TxId(bytes.fromhex(tips["branch"]))
            if payer.last is not None and (attempt or self.rng.random() < 0.5):
                trunk = payer.last  # keep the device's own change in view
            tx = await asyncio.to_thread(
                build,
                payer.key,
                PARAMS,
                trunk=trunk,
                branch=branch,
                timestamp=int(time.time() * 1000),
                inputs=inputs,
                payments=payments,
                payload=payload,
            )
            status, body = await self.json(
                "POST", f"{payer.api}/api/v1/transactions", {"raw": tx.encode().hex()}
            )
            if status in (200, 201):
                for oid in inputs:
                    payer.coins.pop(oid, None)
                    payer.spent.add(oid)
                for index, out in enumerate(tx.outputs):
                    if out.address == payer.address:
                        payer.coins[OutputId(tx.id, index)] = out.amount
                payer.last = tx.id
                payer.sent += 1
                self.stats.submitted[tx.id] = time.monotonic()
                return True
            error = body.get("error", {})
            stale_view = error.get("conflict_reason") == STALE_VIEW
            if not (stale_view or error.get("code") == ErrorCode.UNKNOWN_PARENT):
                break  # fresh tips mend a stale view or an unknown parent; nothing else
        self.stats.refused += 1
        return False

    async def round(self) -> None:
        d = self.devices
        self.meter_wh += self.rng.randint(300, 1200)
        due = (self.meter_wh - self.paid_wh) // 1000
        reading = f"meter=charger-1;wh={self.meter_wh}".encode()
        kib = self.rng.randint(1, 8)
        record = f"sensor=temp-7;kib={kib};c={self.rng.uniform(18, 24):.2f}".encode()
        jobs = [
            self.pay(d["sensor"], None, 0, record),
            self.pay(d["buyer"], d["sensor"], kib * PRICE_PER_KIB),
        ]
        if due:
            jobs.append(self.pay(d["car"], d["charger"], due * PRICE_PER_KWH, reading))
            self.paid_wh += due * 1000
        if self.rng.random() < 0.3:
            await self.refresh(d["charger"])
            held = sum(d["charger"].coins.values())
            if held > 20:
                jobs.append(self.pay(d["charger"], d["grid"], held // 2))
        await asyncio.gather(*jobs)

    async def track(self) -> None:
        """Poll the first node for the statuses of what is still unconfirmed."""
        api = self.devnet.apis[0]
        for tx_id, sent in list(self.stats.submitted.items()):
            if tx_id in self.stats.confirmed_after:
                continue
            status, body = await self.json("GET", f"{api}/api/v1/transactions/{tx_id.hex()}")
            if status == 200 and body["metadata"]["status"] == Status.CONFIRMED:
                self.stats.confirmed_after[tx_id] = time.monotonic() - sent

    async def balance(self, device: Device) -> int:
        status, body = await self.json(
            "GET", f"{self.devnet.apis[0]}/api/v1/addresses/{encode_address(device.address)}"
        )
        return int(body["balance"]["confirmed"]) if status == 200 else -1

    async def node_counts(self) -> list[int]:
        counts = []
        for api in self.devnet.apis:
            status, body = await self.json("GET", f"{api}/api/v1/info")
            counts.append(body["transactions"] if status == 200 else -1)
        return counts


async def run_demo(
    emit: Callable[[str], None],
    *,
    nodes: int,
    base_port: int,
    data_dir: Path,
    duration: float,
    seed: int,
) -> None:
    emit(
        f"starting {nodes} nodes on 127.0.0.1:{base_port}..{base_port + nodes - 1} "
        f"(data in {data_dir})"
    )
    devnet = await asyncio.to_thread(start_devnet, data_dir, nodes, base_port)
    emit(f"devnet up: {data_dir / 'devnet.json'}")
    try:
        async with aiohttp.ClientSession() as session:
            demo = NetworkDemo(devnet, session, seed)
            for device in demo.devices.values():
                emit(f"  {device.name:<8} {encode_address(device.address)}  via {device.api}")
            await demo.fund()
            emit(
                f"{'t(s)':>5} {'sent':>5} {'conf':>5} {'p50 ms':>7} {'nodes':>17}  "
                + " ".join(f"{n:>8}" for n in demo.devices)
            )
            began = time.monotonic()
            while time.monotonic() - began < duration:
                tick = time.monotonic()
                await demo.round()
                await demo.track()
                latencies = sorted(demo.stats.confirmed_after.values())
                p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
                counts = await demo.node_counts()
                balances = [await demo.balance(d) for d in demo.devices.values()]
                emit(
                    f"{time.monotonic() - began:>5.0f} {len(demo.stats.submitted):>5} "
                    f"{len(demo.stats.confirmed_after):>5} {p50:>7.0f} "
                    f"{'/'.join(map(str, counts)):>17}  " + " ".join(f"{b:>8}" for b in balances)
                )
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            await asyncio.sleep(2.0)
            await demo.track()
            done = len(demo.stats.confirmed_after)
            emit(
                f"{done} of {len(demo.stats.submitted)} transactions confirmed; "
                f"{demo.stats.refused} refused by the nodes"
            )
    finally:
        codes = await asyncio.to_thread(devnet.stop)
        emit(f"devnet stopped (exit codes {codes})")
