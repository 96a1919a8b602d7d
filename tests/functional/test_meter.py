"""Per-kWh payments against a real node: whole kWh paid with the remainder carried,
readings posted as data transactions the payments approve and name, the seller's
verifier, refused readings, and the ``pay-meter`` command."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tangle.address import encode_address
from tests.functional.framework import NodeProcess
from wallet import cli
from wallet.client import NodeClient
from wallet.errors import MeterError, MeterPaymentInvalid
from wallet.keys import derive_keypair
from wallet.meter import (
    MeterPayer,
    PaymentNote,
    decode_reading,
    verify_meter_payment,
)
from wallet.payments import Payer

pytestmark = pytest.mark.functional
SEED = bytes(range(32))
T0 = 1_795_000_000_000


async def test_readings_pay_whole_kwh_and_verify(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    buyer, seller, meter_key = (derive_keypair(SEED, i) for i in range(3))
    async with NodeClient(node.api) as client:
        await client.faucet(buyer.address, 1_000)
        payer = Payer(client, buyer)
        meter = MeterPayer(
            payer=payer,
            seller=seller.address,
            price_per_kwh=7,
            meter_id="ev-7",
            meter_key=meter_key,
        )
        fed = [(1_000, None), (1_500, None), (2_200, 1), (2_999, None), (4_100, 2)]
        payments = []
        for step, (wh, due_kwh) in enumerate(fed):
            paid = await meter.feed(wh, T0 + step * 60_000)
            assert (paid.note.units if paid else None) == due_kwh
            if paid:
                payments.append(paid)
        assert meter.carried_wh == 100  # 4100 Wh read, 4000 Wh paid
        assert [(p.note.from_wh, p.note.to_wh) for p in payments] == [(1000, 2000), (2000, 4000)]
        assert (await client.address(seller.address)).pending == 21  # 3 kWh × 7

        with pytest.raises(MeterError, match="reading went backwards: 4099 Wh after 4100 Wh"):
            await meter.feed(4_099, T0 + 10 * 60_000)
        before = (await client.info())["transactions"]
        with pytest.raises(MeterError, match="timestamp went backwards"):
            await meter.feed(9_000, T0)
        assert (await client.info())["transactions"] == before  # refused: nothing issued

        for paid in payments:
            checked = await verify_meter_payment(
                client,
                paid.payment_tx.id,
                seller=seller.address,
                price_per_kwh=7,
                meter_id="ev-7",
                meter_key=meter_key.public_key,
            )
            assert checked.reading.wh == paid.reading.wh
            assert checked.reading.meter_key == meter_key.public_key
            assert paid.reading_tx.id in paid.payment_tx.parents  # approved directly
            assert decode_reading(checked.reading_tx.payload) == paid.reading
        first = payments[0].payment_tx.id
        with pytest.raises(MeterPaymentInvalid, match=r"1 kWh × 7 = 7 due to .* gives it 0"):
            await verify_meter_payment(client, first, seller=meter_key.address)
        with pytest.raises(MeterPaymentInvalid, match="expected 8 per kWh, the note says 7"):
            await verify_meter_payment(client, first, seller=seller.address, price_per_kwh=8)
        with pytest.raises(MeterPaymentInvalid, match="expected meter key"):
            await verify_meter_payment(
                client, first, seller=seller.address, meter_key=buyer.public_key
            )
        payer.solver.close()


async def test_verifier_refuses_an_underpaying_note(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    buyer, seller = derive_keypair(SEED, 0), derive_keypair(SEED, 1)
    async with NodeClient(node.api) as client:
        await client.faucet(buyer.address, 1_000)
        payer = Payer(client, buyer)
        meter = MeterPayer(payer=payer, seller=seller.address, price_per_kwh=5, meter_id="m")
        await meter.feed(0, T0)
        honest = await meter.feed(2_000, T0 + 1)
        assert honest is not None
        # the same reading, but a note claiming 2 kWh while paying for one
        note = PaymentNote(
            reading_tx=honest.reading_tx.id, from_wh=2_000, to_wh=4_000, price_per_kwh=5
        )
        cheat = await payer.pay(
            {seller.address: 5}, payload=note.encode(), approve=(honest.reading_tx.id,)
        )
        with pytest.raises(MeterPaymentInvalid, match="2 kWh × 5 = 10 due"):
            await verify_meter_payment(client, cheat.id, seller=seller.address)
        overclaim = await payer.pay(
            {seller.address: 10}, payload=note.encode(), approve=(honest.reading_tx.id,)
        )
        with pytest.raises(MeterPaymentInvalid, match="2000 Wh is below the 4000 Wh"):
            await verify_meter_payment(client, overclaim.id, seller=seller.address)
        payer.solver.close()


def test_pay_meter_command(
    spawn: Callable[..., NodeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = spawn()
    buyer, seller = derive_keypair(SEED, 0), derive_keypair(SEED, 1)
    node.post("/api/v1/faucet", {"address": encode_address(buyer.address), "amount": "500"})
    key_file = tmp_path / "key.hex"
    key_file.write_text(SEED.hex() + "\n")
    readings = tmp_path / "readings.csv"
    readings.write_text(
        "# meter ev-1\n"
        "2026-11-22T10:00:00Z,12345\n"
        "\n"
        "2026-11-22T10:05:00Z,13400\n"
        "2026-11-22T10:10:00Z,15999\n"
        "2026-11-22T10:15:00Z,16345\n"
    )
    common = ["--to", encode_address(seller.address), "--node", node.api, "--key-file"]
    priced = [*common, str(key_file), "--price-per-kwh", "3"]
    code = cli.main(["pay-meter", *priced, "--source", str(readings), "--every", "2", "--json"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["event"], e.get("kwh"), e.get("amount")) for e in lines] == [
        ("payment", 3, "9"),  # 12345 → 15999: 3 whole kWh (≥ every 2) paid, 654 Wh carried
        ("end", None, None),
    ]
    assert lines[-1]["carried_wh"] == 1000  # 16345 − 15345
    balance = node.get(f"/api/v1/addresses/{encode_address(seller.address)}").json
    assert balance["balance"]["pending"] == "9"

    bad = tmp_path / "bad.csv"
    bad.write_text("100\n1200\n1100\n5000\n")
    code = cli.main(
        ["pay-meter", *common, str(key_file), "--price-per-kwh", "3", "--source", str(bad)]
    )
    assert code == 2
    out, err = capsys.readouterr()
    assert re.search(r"^paid 3 for 1 kWh \(100–1100 Wh", out, re.M)
    assert "line 3: reading went backwards: 1100 Wh after 1200 Wh" in err
    assert (
        node.get(f"/api/v1/addresses/{encode_address(seller.address)}").json["balance"]["pending"]
        == "12"
    )  # the 5000 Wh line after the bad one was never paid

    garbled = tmp_path / "garbled.csv"
    garbled.write_text("100\n2026-13-01T00:00:00Z,900\n")
    code = cli.main(
        ["pay-meter", *common, str(key_file), "--price-per-kwh", "3", "--source", str(garbled)]
    )
    assert code == 2
    assert "line 2: bad timestamp '2026-13-01T00:00:00Z'" in capsys.readouterr().err
