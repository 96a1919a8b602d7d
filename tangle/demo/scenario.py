"""An in-process scenario on the core: devices paying each other (no network yet).

A car pays a charger per kWh, a buyer pays a sensor per KiB of data, the charger pays
the grid, the sensor posts signed readings; every transaction is signed, carries real
proof of work and goes through the same ``Tangle.attach`` a node will use. Halfway
through, the car tries to spend one output twice. A second replica hears every
transaction over a lossy network (newest first, some a round late), so it exercises
the solidification buffer, and must end with exactly the same tips and verdicts.

Output goes through ``emit``; the CLI passes ``print``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tangle.address import Address, encode_address
from tangle.builder import build, payments_with_change, select_inputs
from tangle.engine import Engine, EngineParams, LivenessPolicy
from tangle.errors import TangleError
from tangle.ledger import ConflictReason, make_genesis
from tangle.signing import Keypair
from tangle.tangle import Outcome, Tangle, TxStatus
from tangle.transaction import OutputId, Transaction, TxId
from tangle.validation import NetworkParams, validate_stateless
from tangle.walk import WalkParams

DEMO_NETWORK_ID = 0x7467_6C64_656D_6F31  # "tgldemo1"
PRICE_PER_KWH = 25
PRICE_PER_KIB = 2


@dataclass
class Device:
    name: str
    keypair: Keypair
    meter_wh: int = 0
    paid_wh: int = 0
    sent: int = 0
    last: TxId | None = None
    notes: list[str] = field(default_factory=list)


class InsufficientFunds(TangleError):
    """A demo device cannot pay: it has ``has``, the payment needs ``needs``."""

    def __init__(self, device: str, has: int, needs: int) -> None:
        super().__init__(device, has, needs)
        self.device, self.has, self.needs = device, has, needs

    def __str__(self) -> str:
        return f"{self.device}: expected at least {self.needs} to pay, has {self.has}"


class Scenario:
    """The demo's world: one tangle, a replica, and six devices."""

    def __init__(self, *, seed: int, base_difficulty: int, clock: Callable[[], float]) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.params = NetworkParams(network_id=DEMO_NETWORK_ID, base_difficulty=base_difficulty)
        names = ["grid", "charger", "car", "sensor", "buyer", "gateway"]
        # Deterministic demo keys derived from the seed: for a demo only, never for funds.
        self.devices = {
            n: Device(n, Keypair(self.rng.getrandbits(256).to_bytes(32, "big"))) for n in names
        }
        genesis = make_genesis(
            DEMO_NETWORK_ID,
            {
                self.devices["grid"].keypair.address: 1_000_000,
                self.devices["car"].keypair.address: 5_000,
                self.devices["buyer"].keypair.address: 2_000,
            },
        )
        self.tangle = Tangle(genesis, self.params)
        # One demo round is one second of tangle time; the walk starts 2 rounds back.
        self.engine = Engine(
            self.tangle,
            EngineParams(
                capacity=1024,
                walk=WalkParams(depth=2.0),
                promote_after=3.0,
                liveness=LivenessPolicy(idle_after=1.0, max_tips=4),
            ),
        )
        self.now = 0.0
        self.view_rng = random.Random(seed + 2)  # for the balance display, kept apart
        self.replica = Tangle(genesis, self.params)
        self.pow_seconds = 0.0
        self.built = 0
        self._round_tips: list[tuple[TxId, TxId]] = []
        self.network_rng = random.Random(seed + 1)  # the replica's network, kept apart
        self._late: list[Transaction] = []

    # -- one payment -------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def pay(
        self,
        payer: str,
        payee: str | None,
        amount: int,
        payload: bytes = b"",
        *,
        share: float | None = None,
    ) -> Transaction:
        """Build a transfer (or a data-only transaction when ``payee`` is None) and attach it.

        With ``share``, the amount is that share of what the payer holds in its view.
        """
        device = self.devices[payer]
        trunk, branch = self.own_chain(device, *self.next_tips())
        if share is not None:
            amount = int(self.tangle.balance_seen_by(device.keypair.address, trunk, branch) * share)
        inputs: list[OutputId] = []
        payments: dict[Address, int] = {}
        if payee is not None and amount > 0:
            inputs, total = self._select_inputs(device, amount, trunk, branch)
            payee_address = self.devices[payee].keypair.address
            payments = payments_with_change(payee_address, amount, device.keypair.address, total)
        return self._issue(device, trunk, branch, inputs, payments, payload)

    def next_tips(self) -> tuple[TxId, TxId]:
        """Tips chosen at the start of the round: devices issue concurrently, so none of
        them sees what the others attach in the same round (the whitepaper's delay h)."""
        if self._round_tips:
            return self._round_tips.pop()
        return self.engine.select_tips(self.rng, self.now)

    def own_chain(self, device: Device, trunk: TxId, branch: TxId) -> tuple[TxId, TxId]:
        """Approve the device's own last transaction, as a wallet does, so that its view
        includes its own spends and it never pays twice from the same output.

        A last transaction that is conflicting or orphaned is abandoned instead (a wallet
        would reattach it): its spends are then free to be made again.
        """
        last = device.last
        t = self.tangle
        if last is None or t.dag.in_past_cone(last, trunk) or t.dag.in_past_cone(last, branch):
            return trunk, branch
        if self.engine.status(last) not in (TxStatus.PENDING, TxStatus.CONFIRMED):
            return trunk, branch
        return (last, branch) if t.can_approve(last, branch) else (last, last)

    def _select_inputs(
        self, device: Device, amount: int, trunk: TxId, branch: TxId
    ) -> tuple[list[OutputId], int]:
        chosen, total = select_inputs(
            (
                (oid, o.amount)
                for oid, o in self.tangle.unspent_seen_by(trunk, branch).items()
                if o.address == device.keypair.address
            ),
            amount,
        )
        if total < amount:
            raise InsufficientFunds(device.name, total, amount)
        return chosen, total

    def _issue(
        self,
        device: Device,
        trunk: TxId,
        branch: TxId,
        inputs: list[OutputId],
        payments: dict[Address, int],
        payload: bytes,
    ) -> Transaction:
        started = time.perf_counter()
        tx = build(
            device.keypair,
            self.params,
            trunk=trunk,
            branch=branch,
            timestamp=self.now_ms(),
            inputs=inputs,
            payments=payments,
            payload=payload,
        )
        self.pow_seconds += time.perf_counter() - started
        self.built += 1
        validate_stateless(tx, self.params)
        self.engine.attach_validated(tx, self.now)
        device.sent += 1
        device.last = tx.id
        return tx

    # -- the story ---------------------------------------------------------------------

    def round(self, n: int, emit: Callable[[str], None]) -> list[Transaction]:
        issued: list[Transaction] = []
        self.now = float(n)
        self._round_tips = [self.engine.select_tips(self.rng, self.now) for _ in range(8)]
        car = self.devices["car"]

        def attempt(
            payer: str,
            payee: str | None,
            amount: int,
            payload: bytes = b"",
            share: float | None = None,
        ) -> None:
            try:
                issued.append(self.pay(payer, payee, amount, payload, share=share))
            except InsufficientFunds as exc:
                emit(f"  ! {payer} cannot pay {amount}: {exc}")

        # The car charges: the meter counts Wh; every completed kWh is paid for.
        car.meter_wh += self.rng.randint(400, 1600)
        due_kwh = (car.meter_wh - car.paid_wh) // 1000
        reading = f"meter=charger-1;wh={car.meter_wh};round={n}".encode()
        if due_kwh:
            before = len(issued)
            attempt("car", "charger", due_kwh * PRICE_PER_KWH, reading)
            if len(issued) > before:
                car.paid_wh += due_kwh * 1000
        else:  # nothing due yet: the charger posts the signed reading alone
            attempt("charger", None, 0, reading)

        # The sensor posts a record and sells a few KiB of readings to the buyer.
        kib = self.rng.randint(1, 8)
        record = f"sensor=temp-7;celsius={self.rng.uniform(18, 24):.2f};kib={kib}".encode()
        attempt("sensor", None, 0, record)
        attempt("buyer", "sensor", kib * PRICE_PER_KIB)

        # The charger settles half of what it holds with the grid every few rounds.
        if n % 4 == 3:
            attempt("charger", "grid", 0, share=0.5)
        if n % 5 == 0:  # the grid tops up the car
            attempt("grid", "car", 500)
        if self.engine.consolidation_due(self.now):  # the gateway keeps the tangle moving
            attempt("gateway", None, 0)
        if n == 6:
            issued.extend(self.double_spend(emit))
        return issued

    def double_spend(self, emit: Callable[[str], None]) -> list[Transaction]:
        """The car spends one output twice at the same moment, on two tips of the round.

        Both payments are consistent on their own (§8.3); a careless gateway that then
        approves both gets a transaction whose cone spends the output twice (R6).
        """
        car = self.devices["car"]
        # Both payments are prepared before either is attached: issued at the same moment.
        tips_a = self.own_chain(car, *self.next_tips())
        tips_b = self.own_chain(car, *self.next_tips())
        seen_a = self.tangle.unspent_seen_by(*tips_a)
        seen = self.tangle.unspent_seen_by(*tips_b)
        owned = sorted(
            oid for oid, o in seen.items() if o.address == car.keypair.address and oid in seen_a
        )
        if not owned:
            return []
        oid = owned[0]
        amount = seen[oid].amount
        to_charger = {self.devices["charger"].keypair.address: amount}
        to_buyer = {self.devices["buyer"].keypair.address: amount}
        first = self._issue(car, *tips_a, [oid], to_charger, b"")
        second = self._issue(car, *tips_b, [oid], to_buyer, b"")
        emit(
            f"  ! double spend: the car spends output {oid.hex()[:12]}… twice: "
            f"{first.id.hex()[:12]}… (to charger) and {second.id.hex()[:12]}… (to buyer)"
        )
        careless = self._issue(self.devices["gateway"], first.id, second.id, [], {}, b"")
        verdict = self.tangle.verdict(careless.id)
        emit(
            f"  ! a careless gateway approves both: {careless.id.hex()[:12]}… is "
            f"{self.engine.status(careless.id).name.lower()} ({verdict.reason.name})"
        )
        return [first, second, careless]

    def replicate(self, issued: list[Transaction]) -> int:
        """Gossip to the replica like a lossy network: about 30% of the round's
        transactions reach it one round late, after their own approvers, and the rest
        arrive newest first. Returns how many the replica had to park in its buffer."""
        late = [tx for tx in issued if self.network_rng.random() < 0.3]
        now = [tx for tx in reversed(issued) if tx not in late]
        buffered = 0
        for tx in now + self._late:
            if self.replica.attach(tx).outcome is Outcome.BUFFERED:
                buffered += 1
        self._late = late
        return buffered

    def flush(self) -> None:
        """Deliver what the network still holds back."""
        for tx in self._late:
            self.replica.attach(tx)
        self._late = []


def run(
    emit: Callable[[str], None],
    *,
    rounds: int = 40,
    delay: float = 0.25,
    seed: int = 1,
    base_difficulty: int = 12,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Scenario:
    """Run the scenario, emitting one line per round; returns the final state."""
    world = Scenario(seed=seed, base_difficulty=base_difficulty, clock=clock)
    t = world.tangle
    emit(f"network {DEMO_NETWORK_ID:#x}, base difficulty {base_difficulty} bits, seed {seed}")
    for name, device in world.devices.items():
        emit(f"  {name:<8} {encode_address(device.keypair.address)}")
    header = f"{'round':>5} {'txs':>5} {'tips':>4} {'confl':>5} {'buf':>4}  " + " ".join(
        f"{n:>8}" for n in world.devices
    )
    emit(header)
    for n in range(1, rounds + 1):
        issued = world.round(n, emit)
        buffered = world.replicate(issued)
        engine = world.engine
        engine.confirm(world.rng, world.now)
        view = engine.select_tips(world.view_rng, world.now)  # what a new payment would see
        balances = [t.balance_seen_by(d.keypair.address, *view) for d in world.devices.values()]
        conflicting = sum(1 for tx in t if engine.status(tx.id) is TxStatus.CONFLICTING)
        emit(
            f"{n:>5} {len(t):>5} {len(t.tips()):>4} {engine.confirmed_count:>5} "
            f"{conflicting:>5} {buffered:>4}  " + " ".join(f"{b:>8}" for b in balances)
        )
        if sum(balances) != t.supply:
            raise AssertionError(f"supply broken: {sum(balances)} != {t.supply}")
        sleep(delay)
    summarize(world, emit)
    return world


def summarize(world: Scenario, emit: Callable[[str], None]) -> None:
    world.flush()
    t, r = world.tangle, world.replica
    same = t.tips() == r.tips() and all(t.verdict(x.id) == r.verdict(x.id) for x in t)
    emit(
        f"{len(t)} transactions, {len(t.tips())} tips, supply {t.supply} conserved; "
        f"proof of work {1000 * world.pow_seconds / max(1, world.built):.1f} ms per transaction"
    )
    emit(f"replica (fed out of order, some late) agrees on every tip and verdict: {same}")
    engine = world.engine
    for output_id, spenders in t.ledger.conflict_sets():
        parts = []
        for s in spenders:
            status = engine.status(s).name.lower()
            reason = engine.conflict_reason(s)
            why = f", {reason.name}" if reason is not ConflictReason.NONE else ""
            parts.append(f"{s.hex()[:12]}… weight {t.dag.cumulative_weight(s)} ({status}{why})")
        emit(f"conflict set on {output_id.hex()[:12]}…: " + "; ".join(parts))
    unconfirmed = sum(1 for x in t if engine.status(x.id) is TxStatus.PENDING)
    emit(f"{engine.confirmed_count} confirmed, {unconfirmed} still pending (the newest)")
