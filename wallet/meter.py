"""Paying per kWh from cumulative meter readings, on the ledger (wallet layer).

A device embeds :class:`MeterPayer` and feeds it cumulative readings in Wh. Each time
``every`` whole kWh have completed since the last payment it

1. posts the reading as a signed data transaction (payload: :class:`Reading`), then
2. pays the seller ``units × price_per_kwh`` in a transaction that approves the reading
   and carries its id (payload: :class:`PaymentNote`),

so buyer and seller share one auditable record. Only whole kWh are paid; the Wh beyond
the last whole kWh are carried to the next payment, never rounded up or lost. The
seller runs :func:`verify_meter_payment` on a payment id. Wire formats: docs/PAYMENTS.md.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tangle.address import Address, encode_address
from tangle.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from tangle.errors import InvalidSignature
from tangle.schema import Status
from tangle.signing import Keypair, verify_signature
from tangle.transaction import Transaction, TxId
from wallet.audit import approves, fetch_transaction, paid_to
from wallet.client import NodeClient
from wallet.errors import AuditError, MeterError, MeterPaymentInvalid
from wallet.payments import Payer

WH_PER_KWH = 1000
READING_MAGIC = b"TMR1"
"""First 4 bytes of a reading's payload: tangle meter reading, format 1."""
NOTE_MAGIC = b"TMP1"
"""First 4 bytes of a meter payment's payload: tangle meter payment, format 1."""
READING_SIGNING_TAG = b"tangle/meter-reading/v1\x00"
"""Domain tag before the bytes a separate meter key signs."""
MAX_METER_ID = 64
_U64 = 2**64 - 1
_READING = struct.Struct(">QQQ")
_NOTE = struct.Struct(">32sQQQ")


def _u64(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MeterError(f"{name}: expected an integer, got {type(value).__name__}")
    if not 0 <= value <= _U64:
        raise MeterError(f"{name}: expected 0 to {_U64}, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One cumulative meter reading, as posted in a data transaction's payload."""

    meter_id: str
    """1–64 bytes of UTF-8 naming the meter."""
    sequence: int
    """u64: the reading's number in this meter session, from 1."""
    wh: int
    """u64, Wh: the meter's cumulative counter."""
    timestamp: int
    """u64, milliseconds since the Unix epoch, when the meter read it."""
    meter_key: bytes = b""
    """Empty, or the 32-byte Ed25519 key of a meter that is not the transaction's issuer."""
    meter_signature: bytes = b""
    """Empty, or 64 bytes: ``meter_key``'s signature of the tag and the body."""

    def __post_init__(self) -> None:
        raw_id = self.meter_id.encode()
        if not 1 <= len(raw_id) <= MAX_METER_ID:
            raise MeterError(f"meter id: expected 1 to {MAX_METER_ID} bytes, got {len(raw_id)}")
        _u64("sequence", self.sequence)
        _u64("reading", self.wh)
        _u64("timestamp", self.timestamp)
        if (len(self.meter_key), len(self.meter_signature)) not in (
            (0, 0),
            (PUBLIC_KEY_SIZE, SIGNATURE_SIZE),
        ):
            raise MeterError("meter signature: expected none, or a 32-byte key and 64 bytes")

    def body(self) -> bytes:
        """Magic, meter id (u8 length), sequence, Wh, timestamp: what a meter key signs."""
        raw_id = self.meter_id.encode()
        return (
            READING_MAGIC
            + bytes([len(raw_id)])
            + raw_id
            + _READING.pack(self.sequence, self.wh, self.timestamp)
        )

    def encode(self) -> bytes:
        """The body, then a flag byte: 0, or 1 followed by the meter key and signature."""
        if not self.meter_key:
            return self.body() + b"\x00"
        return self.body() + b"\x01" + self.meter_key + self.meter_signature

    def signed_by(self, meter: Keypair) -> Reading:
        """This reading carrying ``meter``'s own signature."""
        return Reading(
            meter_id=self.meter_id,
            sequence=self.sequence,
            wh=self.wh,
            timestamp=self.timestamp,
            meter_key=meter.public_key,
            meter_signature=meter.sign(READING_SIGNING_TAG + self.body()),
        )

    def check_meter_signature(self) -> None:
        """Raises InvalidSignature when a meter signature is present and wrong."""
        if self.meter_key:
            verify_signature(
                self.meter_key, READING_SIGNING_TAG + self.body(), self.meter_signature
            )


def decode_reading(data: bytes) -> Reading:
    """Strictly decode a reading payload; raises MeterError naming what is wrong."""
    if data[:4] != READING_MAGIC or len(data) < 5:
        raise MeterError("reading payload: does not start with the reading magic TMR1")
    id_len = data[4]
    end = 5 + id_len + _READING.size
    if len(data) < end + 1:
        raise MeterError(f"reading payload: truncated at {len(data)} bytes")
    try:
        meter_id = data[5 : 5 + id_len].decode()
    except UnicodeDecodeError:
        raise MeterError("reading payload: the meter id is not UTF-8") from None
    sequence, wh, timestamp = _READING.unpack(data[5 + id_len : end])
    flag, rest = data[end], data[end + 1 :]
    if flag == 0 and not rest:
        key, sig = b"", b""
    elif flag == 1 and len(rest) == PUBLIC_KEY_SIZE + SIGNATURE_SIZE:
        key, sig = rest[:PUBLIC_KEY_SIZE], rest[PUBLIC_KEY_SIZE:]
    else:
        raise MeterError(f"reading payload: bad signature flag {flag} or trailing bytes")
    return Reading(
        meter_id=meter_id,
        sequence=sequence,
        wh=wh,
        timestamp=timestamp,
        meter_key=key,
        meter_signature=sig,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentNote:
    """The payload of a meter payment: which reading it pays for and at what price."""

    reading_tx: TxId
    """32 bytes: the data transaction holding the reading."""
    from_wh: int
    """u64, Wh: the meter counter already paid for before this payment."""
    to_wh: int
    """u64, Wh: the counter paid up to; ``to_wh - from_wh`` is a whole number of kWh."""
    price_per_kwh: int
    """u64, smallest units per kWh."""

    @property
    def units(self) -> int:
        return (self.to_wh - self.from_wh) // WH_PER_KWH

    @property
    def amount(self) -> int:
        return self.units * self.price_per_kwh

    def encode(self) -> bytes:
        return NOTE_MAGIC + _NOTE.pack(
            self.reading_tx, self.from_wh, self.to_wh, self.price_per_kwh
        )


def decode_note(data: bytes) -> PaymentNote:
    if data[:4] != NOTE_MAGIC or len(data) != 4 + _NOTE.size:
        raise MeterPaymentInvalid("payment payload: not a meter payment note (TMP1, 60 bytes)")
    reading_tx, from_wh, to_wh, price = _NOTE.unpack(data[4:])
    return PaymentNote(
        reading_tx=TxId(reading_tx), from_wh=from_wh, to_wh=to_wh, price_per_kwh=price
    )


@dataclass(frozen=True, slots=True)
class MeterPayment:
    """What one completed batch of kWh cost and where it is on the tangle."""

    reading: Reading
    reading_tx: Transaction
    payment_tx: Transaction
    note: PaymentNote
    seller: Address


@dataclass
class MeterPayer:
    """Pays ``seller`` for each ``every`` whole kWh the fed readings complete.

    The first reading is the baseline (nothing is owed for it) unless ``paid_wh`` is
    given. State advances only after a payment was accepted by the node, so a failed
    payment is retried with the next reading.
    """

    payer: Payer
    seller: Address
    price_per_kwh: int
    meter_id: str
    every: int = 1
    meter_key: Keypair | None = None
    """The meter's own key, when it is not the paying key: readings carry its signature."""
    paid_wh: int | None = None
    clock: Callable[[], float] = time.time
    last_wh: int | None = field(default=None, init=False)
    last_timestamp: int = field(default=0, init=False)
    sequence: int = field(default=0, init=False)
    _last_tx: TxId | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.price_per_kwh, bool) or self.price_per_kwh < 1:
            raise MeterError(f"price per kWh: expected ≥ 1, got {self.price_per_kwh}")
        if self.every < 1:
            raise MeterError(f"every: expected ≥ 1 kWh, got {self.every}")
        Reading(meter_id=self.meter_id, sequence=0, wh=0, timestamp=0)  # checks the id

    @property
    def carried_wh(self) -> int:
        """Wh read but not yet paid for (less than ``every`` kWh)."""
        if self.last_wh is None or self.paid_wh is None:
            return 0
        return self.last_wh - self.paid_wh

    def check(self, wh: int, timestamp: int) -> None:
        """Raises MeterError if (wh, timestamp) cannot follow the readings so far."""
        _u64("reading", wh)
        _u64("timestamp", timestamp)
        if self.last_wh is not None and wh < self.last_wh:
            raise MeterError(f"reading went backwards: {wh} Wh after {self.last_wh} Wh")
        if self.paid_wh is not None and wh < self.paid_wh:
            raise MeterError(f"reading {wh} Wh is below the {self.paid_wh} Wh already paid")
        if timestamp < self.last_timestamp:
            raise MeterError(
                f"timestamp went backwards: {timestamp} ms after {self.last_timestamp} ms"
            )

    async def feed(self, wh: int, timestamp: int | None = None) -> MeterPayment | None:
        """Take one cumulative reading (Wh; timestamp in ms, default now); pay if due.

        Raises:
            MeterError: the reading is malformed or goes backwards; nothing is paid.
            InsufficientFunds, SendFailed, NodeError, NodeUnreachable: from the payer.
        """
        ts = int(self.clock() * 1000) if timestamp is None else timestamp
        self.check(wh, ts)
        self.sequence += 1
        self.last_wh, self.last_timestamp = wh, ts
        if self.paid_wh is None:
            self.paid_wh = wh
            return None
        units = (wh - self.paid_wh) // WH_PER_KWH
        if units < self.every:
            return None
        reading = Reading(meter_id=self.meter_id, sequence=self.sequence, wh=wh, timestamp=ts)
        if (
            self.meter_key is not None
            and self.meter_key.public_key != self.payer.keypair.public_key
        ):
            reading = reading.signed_by(self.meter_key)
        previous = (self._last_tx,) if self._last_tx is not None else ()
        # The reading approves the previous payment, whose change this one spends, so the
        # payment below needs only the reading as a new parent.
        data_tx = await self.payer.issue([], {}, reading.encode(), approve=previous)
        note = PaymentNote(
            reading_tx=data_tx.id,
            from_wh=self.paid_wh,
            to_wh=self.paid_wh + units * WH_PER_KWH,
            price_per_kwh=self.price_per_kwh,
        )
        payment = await self.payer.pay(
            {self.seller: note.amount}, payload=note.encode(), approve=(data_tx.id,)
        )
        self.paid_wh = note.to_wh
        self._last_tx = payment.id
        return MeterPayment(
            reading=reading, reading_tx=data_tx, payment_tx=payment, note=note, seller=self.seller
        )


@dataclass(frozen=True, slots=True)
class VerifiedMeterPayment:
    payment_tx: Transaction
    reading_tx: Transaction
    reading: Reading
    note: PaymentNote
    status: Status
    """The payment's status now: pending or confirmed."""


async def verify_meter_payment(
    client: NodeClient,
    payment_id: TxId,
    *,
    seller: Address,
    price_per_kwh: int | None = None,
    meter_id: str | None = None,
    meter_key: bytes | None = None,
) -> VerifiedMeterPayment:
    """The seller's check of one meter payment, through the node.

    Checks that the payment is live and signed, that its note names a reading the
    payment approves, that the reading is well formed, signed (by the payment's issuer,
    or by ``meter_key`` when given), reaches the Wh paid for, and that the payment gives
    ``seller`` exactly ``units × price``.

    Raises:
        MeterPaymentInvalid: the first check that fails, in words.
    """
    try:
        payment = await fetch_transaction(client, payment_id)
    except AuditError as exc:
        raise MeterPaymentInvalid(str(exc)) from None
    if not payment.status.live:
        raise MeterPaymentInvalid(f"payment {payment_id.hex()} is {payment.status}")
    note = decode_note(payment.tx.payload)
    if note.to_wh <= note.from_wh or (note.to_wh - note.from_wh) % WH_PER_KWH:
        raise MeterPaymentInvalid(
            f"payment covers {note.from_wh}–{note.to_wh} Wh, not a whole number of kWh"
        )
    if price_per_kwh is not None and note.price_per_kwh != price_per_kwh:
        raise MeterPaymentInvalid(
            f"price: expected {price_per_kwh} per kWh, the note says {note.price_per_kwh}"
        )
    received = paid_to(payment.tx, seller)
    if received != note.amount:
        raise MeterPaymentInvalid(
            f"amount: {note.units} kWh × {note.price_per_kwh} = {note.amount} due to "
            f"{encode_address(seller)}, the payment gives it {received}"
        )
    try:
        data = await fetch_transaction(client, note.reading_tx)
    except AuditError as exc:
        raise MeterPaymentInvalid(f"reading: {exc}") from None
    if not data.status.live:
        raise MeterPaymentInvalid(f"reading {note.reading_tx.hex()} is {data.status}")
    try:
        reading = decode_reading(data.tx.payload)
        reading.check_meter_signature()
    except (MeterError, InvalidSignature) as exc:
        raise MeterPaymentInvalid(f"reading {note.reading_tx.hex()}: {exc}") from None
    signer = reading.meter_key or data.tx.issuer
    if meter_key is not None and signer != meter_key:
        raise MeterPaymentInvalid("reading: not signed by the expected meter key")
    if meter_key is None and not reading.meter_key and data.tx.issuer != payment.tx.issuer:
        raise MeterPaymentInvalid("reading: posted by another key than the payment's")
    if meter_id is not None and reading.meter_id != meter_id:
        raise MeterPaymentInvalid(f"reading: meter {reading.meter_id!r}, expected {meter_id!r}")
    if reading.wh < note.to_wh:
        raise MeterPaymentInvalid(
            f"reading: {reading.wh} Wh is below the {note.to_wh} Wh the payment covers"
        )
    if not await approves(client, payment.tx, note.reading_tx):
        raise MeterPaymentInvalid("payment: does not approve the reading it names")
    return VerifiedMeterPayment(
        payment_tx=payment.tx,
        reading_tx=data.tx,
        reading=reading,
        note=note,
        status=payment.status,
    )
