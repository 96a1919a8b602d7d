"""``make demo``: a devnet of real nodes where machines pay each other through the wallet.

- an *operator* funds its fleet (a car and a data buyer) from the dev faucet, then tops
  them up automatically (min → target, within a daily cap) in one transaction per round;
- a *car* charges at a *charger*: the charger's meter signs cumulative readings, and the
  car pays per completed kWh, each payment approving the reading it pays for
  (:mod:`wallet.meter`), so both share one auditable record;
- a *sensor* sells its data per KiB over HTTP (:mod:`wallet.x402.streams`): the *buyer*
  pays one deposit, then a signed voucher per window; at close the sensor keeps what was
  vouched and refunds the rest on the ledger.

Every device talks to a different node of the devnet; a line per second shows what was
paid, what the nodes hold and confirmed, and each device's balance. Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tangle.address import Address, encode_address
from tangle.node.devnet import start_devnet
from tangle.schema import Status
from tangle.transaction import TxId
from wallet.client import NodeClient
from wallet.errors import WalletError
from wallet.fleet import plan_topups
from wallet.keys import derive_keypair
from wallet.meter import MeterPayer, verify_meter_payment
from wallet.payments import Payer
from wallet.state import Policy
from wallet.x402 import PayingSession, Paywall, StreamSeller, buy_stream

PRICE_PER_KWH = 25
"""Smallest units per kWh the car pays the charger."""
PRICE_PER_KIB = 2
"""Smallest units per KiB the buyer pays the sensor."""
FLEET = {"car": Policy("car", 800, 1_000, 5_000), "buyer": Policy("buyer", 850, 1_000, 5_000)}
"""The operator's top-up policies: min, target, daily cap."""
NAMES = ("operator", "car", "charger", "meter", "sensor", "buyer")


@dataclass
class Tally:
    submitted: dict[TxId, float] = field(default_factory=dict)
    confirmed_after: dict[TxId, float] = field(default_factory=dict)
    kwh_paid: int = 0
    kib_bought: float = 0.0
    streams: int = 0
    refunded: int = 0
    topups: int = 0
    failures: list[str] = field(default_factory=list)

    def sent(self, tx_id: TxId) -> None:
        self.submitted[tx_id] = time.monotonic()


class Demo:
    def __init__(self, apis: list[str], seed: int) -> None:
        root = hashlib.blake2b(f"tangle-demo-{seed}".encode(), digest_size=32).digest()
        self.keys = {name: derive_keypair(root, i) for i, name in enumerate(NAMES)}
        self.clients = [NodeClient(api) for api in apis]
        self.rng = random.Random(seed)
        self.tally = Tally()

        def payer(name: str, node: int) -> Payer:
            return Payer(self.clients[node % len(apis)], self.keys[name])

        self.operator = payer("operator", 0)
        self.car = payer("car", 1)
        self.buyer = payer("buyer", 2)
        self.sensor = payer("sensor", 2)
        self.meter = MeterPayer(
            payer=self.car,
            seller=self.address("charger"),
            price_per_kwh=PRICE_PER_KWH,
            meter_id="charger-1",
            meter_key=self.keys["meter"],
        )
        self.meter_wh = 0
        self.payments: list[TxId] = []
        self.paid_today: dict[str, int] = {}

    def address(self, name: str) -> Address:
        return self.keys[name].address

    async def close(self) -> None:
        for payer in (self.operator, self.car, self.buyer, self.sensor):
            payer.solver.close()
        for client in self.clients:
            await client.close()

    async def fund(self) -> None:
        """The operator takes 50,000 from the faucet and fills its fleet in one payment."""
        funding = await self.clients[0].faucet(self.address("operator"), 50_000)
        self.tally.sent(funding)
        payments = {self.address(name): policy.target for name, policy in FLEET.items()}
        tx = await self.operator.pay(payments)
        self.tally.sent(tx.id)

    async def balances(self) -> dict[str, tuple[int, int]]:
        client = self.clients[0]
        found = {}
        for name in ("operator", "car", "charger", "sensor", "buyer"):
            info = await client.address(self.address(name))
            found[name] = (info.confirmed, info.pending)
        return found

    async def autotopup(self, balances: dict[str, tuple[int, int]]) -> None:
        """Top up whoever is below its minimum (pending balance: what it can spend)."""
        plans = plan_topups(
            list(FLEET.values()), {n: balances[n][1] for n in FLEET}, self.paid_today
        )
        payments = {self.address(p.device): p.amount for p in plans if p.amount > 0}
        if payments:
            tx = await self.operator.pay(payments)
            self.tally.sent(tx.id)
            self.tally.topups += 1
            for plan in plans:
                self.paid_today[plan.device] = self.paid_today.get(plan.device, 0) + plan.amount

    async def charge(self) -> None:
        """The meter advances 300–1,200 Wh; the car pays each completed kWh."""
        self.meter_wh += self.rng.randint(300, 1_200)
        payment = await self.meter.feed(self.meter_wh)
        if payment is not None:
            self.tally.sent(payment.reading_tx.id)
            self.tally.sent(payment.payment_tx.id)
            self.tally.kwh_paid += payment.note.units
            self.payments.append(payment.payment_tx.id)

    async def buy(self, http: aiohttp.ClientSession, url: str) -> None:
        """The buyer reads the sensor's data as a metered stream, within a budget."""
        paying = PayingSession(http, self.buyer, max_per_request=200, max_total=1_000_000)
        result = await buy_stream(paying, url)
        self.tally.sent(result.deposit_tx)
        refund = result.closing.get("refundTransaction")
        if refund:
            self.tally.sent(TxId(bytes.fromhex(refund)))
        self.tally.kib_bought += len(result.data) / 1024
        self.tally.refunded += int(result.closing["refunded"])
        self.tally.streams += 1

    async def track(self) -> int:
        waiting = [t for t in self.tally.submitted if t not in self.tally.confirmed_after]
        if waiting:
            now = time.monotonic()
            for tx_id, status in (await self.clients[0].statuses(waiting)).items():
                if status == Status.CONFIRMED:
                    self.tally.confirmed_after[tx_id] = now - self.tally.submitted[tx_id]
        return len(self.tally.confirmed_after)

    async def node_counts(self) -> list[int]:
        return [(await c.info())["transactions"] for c in self.clients]


def sensor_data(rng: random.Random, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        record = {"sensor": "temp-7", "t": len(data), "c": round(rng.uniform(18, 24), 2)}
        data += json.dumps(record).encode() + b"\n"
    return bytes(data[:size])


async def serve_sensor(demo: Demo) -> tuple[web.AppRunner, str]:
    """The sensor's HTTP server on 127.0.0.1 (any free port): 10 KiB per stream, a
    deposit for 12 KiB, so each stream ends with a refund of the unread 2 KiB."""
    seller = StreamSeller(
        paywall=Paywall(demo.clients[2 % len(demo.clients)], demo.address("sensor")),
        refunder=demo.sensor,
        content=sensor_data(demo.rng, 10 * 1024),
        price=PRICE_PER_KIB,
        per_bytes=1024,
        window=4096,
        windows_per_deposit=3,
    )
    app = web.Application()
    seller.add_routes(app, "/readings")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/readings"


async def run_demo(
    emit: Callable[[str], None],
    *,
    nodes: int,
    base_port: int,
    data_dir: Path,
    duration: float,
    seed: int,
) -> int:
    """Returns the number of problems seen (0: everything paid and checked out)."""
    emit(f"starting {nodes} nodes on 127.0.0.1:{base_port}..{base_port + nodes - 1}")
    devnet = await asyncio.to_thread(start_devnet, data_dir, nodes, base_port)
    emit(f"devnet up: {data_dir / 'devnet.json'}")
    demo = Demo(devnet.apis, seed)
    runner: web.AppRunner | None = None
    try:
        for i, name in enumerate(("operator", "car", "buyer", "sensor")):
            node = devnet.apis[(0, 1, 2, 2)[i] % nodes]
            emit(f"  {name:<8} {encode_address(demo.address(name))}  via {node}")
        emit(f"  charger  {encode_address(demo.address('charger'))}  (paid per kWh)")
        await demo.fund()
        runner, url = await serve_sensor(demo)
        emit(f"  sensor data for sale per KiB at {url}")
        names = ("operator", "car", "charger", "sensor", "buyer")
        emit(
            f"{'t(s)':>4} {'sent':>5} {'conf':>5} {'p50ms':>6} {'kWh':>4} {'KiB':>5} "
            f"{'nodes':>14}  " + " ".join(f"{n:>9}" for n in names)
        )
        async with aiohttp.ClientSession() as http:
            began = time.monotonic()
            buying: asyncio.Task[None] | None = None
            try:
                while time.monotonic() - began < duration:
                    tick = time.monotonic()
                    try:
                        await demo.charge()
                        if buying is None or buying.done():
                            if buying is not None and buying.exception() is not None:
                                demo.tally.failures.append(f"stream: {buying.exception()}")
                            buying = asyncio.create_task(demo.buy(http, url))
                        balances = await demo.balances()
                        await demo.autotopup(balances)
                    except WalletError as exc:
                        demo.tally.failures.append(str(exc))
                        emit(f"  ! {exc}")
                        balances = await demo.balances()
                    confirmed = await demo.track()
                    latencies = sorted(demo.tally.confirmed_after.values())
                    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
                    counts = "/".join(map(str, await demo.node_counts()))
                    emit(
                        f"{time.monotonic() - began:>4.0f} {len(demo.tally.submitted):>5} "
                        f"{confirmed:>5} {p50:>6.0f} {demo.tally.kwh_paid:>4} "
                        f"{demo.tally.kib_bought:>5.0f} {counts:>14}  "
                        + " ".join(f"{balances[n][1]:>9}" for n in names)
                    )
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
                if buying is not None:
                    (last,) = await asyncio.gather(buying, return_exceptions=True)
                    if isinstance(last, Exception):
                        demo.tally.failures.append(f"stream: {last}")
            finally:  # Ctrl-C: the stream in flight stops before its HTTP session closes
                if buying is not None and not buying.done():
                    buying.cancel()
                    await asyncio.gather(buying, return_exceptions=True)
        await asyncio.sleep(2.0)
        confirmed = await demo.track()
        tally = demo.tally
        emit(
            f"{confirmed} of {len(tally.submitted)} transactions confirmed; "
            f"{tally.kwh_paid} kWh paid at {PRICE_PER_KWH}/kWh, {tally.kib_bought:.0f} KiB "
            f"bought at {PRICE_PER_KIB}/KiB in {tally.streams} streams "
            f"({tally.refunded} refunded), {tally.topups} automatic top-ups"
        )
        if demo.payments:
            checked = await verify_meter_payment(
                demo.clients[0],
                demo.payments[-1],
                seller=demo.address("charger"),
                price_per_kwh=PRICE_PER_KWH,
                meter_key=demo.keys["meter"].public_key,
            )
            emit(
                f"charger's audit of the last meter payment: {checked.note.units} kWh "
                f"for {checked.note.amount}, reading #{checked.reading.sequence} at "
                f"{checked.reading.wh} Wh signed by the meter: OK"
            )
        return len(tally.failures)
    finally:
        if runner is not None:
            await runner.cleanup()
        await demo.close()
        codes = await asyncio.to_thread(devnet.stop)
        emit(f"devnet stopped (exit codes {codes})")
