"""Meter readings and payment notes: canonical encodings, meter signatures, input lines."""

from __future__ import annotations

import pytest

from tangle.errors import InvalidSignature
from tangle.signing import Keypair
from tangle.transaction import TxId
from wallet.cli.meter import parse_line
from wallet.errors import MeterError, MeterPaymentInvalid, UsageError
from wallet.meter import (
    PaymentNote,
    Reading,
    decode_note,
    decode_reading,
)

METER = Keypair(bytes([9]) * 32)


def test_reading_round_trips_with_and_without_a_meter_signature() -> None:
    plain = Reading(meter_id="ev-1", sequence=3, wh=12_345, timestamp=1_700_000_000_000)
    encoded = plain.encode()
    assert len(encoded) == 4 + 1 + 4 + 24 + 1  # magic, id length, id, 3 × u64, flag
    assert decode_reading(encoded) == plain
    signed = plain.signed_by(METER)
    assert decode_reading(signed.encode()) == signed
    signed.check_meter_signature()
    forged = Reading(
        meter_id="ev-1",
        sequence=3,
        wh=99_999,
        timestamp=plain.timestamp,
        meter_key=signed.meter_key,
        meter_signature=signed.meter_signature,
    )
    with pytest.raises(InvalidSignature):
        forged.check_meter_signature()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XXXX", "does not start with the reading magic"),
        (Reading(meter_id="m", sequence=1, wh=1, timestamp=1).encode()[:-2], "truncated"),
        (Reading(meter_id="m", sequence=1, wh=1, timestamp=1).encode() + b"\x00", "trailing"),
    ],
)
def test_bad_reading_payloads_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(MeterError, match=message):
        decode_reading(data)


def test_note_round_trips_and_prices_whole_kwh() -> None:
    note = PaymentNote(reading_tx=TxId(bytes(32)), from_wh=1_000, to_wh=4_000, price_per_kwh=7)
    assert (note.units, note.amount) == (3, 21)
    assert decode_note(note.encode()) == note
    with pytest.raises(MeterPaymentInvalid, match="not a meter payment note"):
        decode_note(note.encode()[:-1])


def test_input_lines() -> None:
    assert parse_line("  # comment", 1) is None
    assert parse_line("", 2) is None
    assert parse_line("12345", 3) == (12_345, None)
    assert parse_line("2026-11-22T10:00:00Z,12345", 4) == (12_345, 1_795_341_600_000)
    with pytest.raises(UsageError, match=r"line 5: expected a whole number of Wh.*, got '12\.5'"):
        parse_line("12.5", 5)
    with pytest.raises(UsageError, match="line 6: timestamp '2026-11-22T10:00:00' has no time"):
        parse_line("2026-11-22T10:00:00,1", 6)
    with pytest.raises(UsageError, match=r"line 7: expected a whole number of Wh.*, got '-3'"):
        parse_line("-3", 7)


@pytest.mark.parametrize("value", ["²", "1_000", "١٢", "+5", "12\n3", "１２"])
def test_input_lines_take_ascii_digits_only(value: str) -> None:
    """``"²".isdigit()`` is True and ``int("1_000")`` works: neither is a reading."""
    with pytest.raises(UsageError, match="line 8: expected a whole number of Wh"):
        parse_line(f"2026-11-22T10:00:00Z,{value}", 8)
