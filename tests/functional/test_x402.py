"""x402-style pay-per-request against a real node and an aiohttp server on 127.0.0.1:
402 → pay → 200; replay, underpayment, wrong recipient and a foreign nonce refused; a
pending settlement answered 202 "pending" (the client pays once); budgets that pay
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tangle.address import Address, decode_address
from tangle.signing import Keypair
from tests.functional.framework import NodeProcess
from wallet.client import NodeClient
from wallet.errors import BudgetExceeded, PaymentRefused
from wallet.keys import derive_keypair
from wallet.payments import Payer
from wallet.x402 import (
    PAYMENT_HEADER,
    PayingSession,
    Paywall,
    SqliteStore,
    decode_header,
    encode_header,
    payer_message,
    payment_payload,
    resource_path,
)

pytestmark = pytest.mark.functional
SEED = bytes(range(32))
DATA = b"temperature=21.5;humidity=40" * 10  # 280 bytes
PRICE_PER_BYTE = 2


@dataclass
class Shop:
    url: str
    paywall: Paywall
    seller: Keypair
    buyer: Keypair
    client: NodeClient
    http: aiohttp.ClientSession
    payer: Payer


@pytest.fixture
async def shop(
    spawn: Callable[..., NodeProcess], tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Shop]:
    node = spawn("node0", *getattr(request, "param", ()))  # arguments by indirect parametrize
    seller, buyer = derive_keypair(SEED, 0), derive_keypair(SEED, 1)
    server_client, buyer_client = NodeClient(node.api), NodeClient(node.api)
    store = SqliteStore(tmp_path / "consumed.sqlite3")
    paywall = Paywall(server_client, seller.address, store, settle_wait=8.0, poll=0.1)

    @paywall.exact(lambda request: len(DATA) * PRICE_PER_BYTE, mime_type="text/plain")
    async def data(request: web.Request) -> web.Response:
        return web.Response(body=DATA, content_type="text/plain")

    @paywall.exact(600)
    async def dear(request: web.Request) -> web.Response:
        return web.Response(text="dear")

    app = web.Application()
    app.router.add_get("/data", data)
    app.router.add_get("/other", data)
    app.router.add_get("/dear", dear)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    await buyer_client.faucet(buyer.address, 5_000)
    payer = Payer(buyer_client, buyer)
    http = aiohttp.ClientSession()
    try:
        yield Shop(str(server.make_url("")), paywall, seller, buyer, buyer_client, http, payer)
    finally:
        await http.close()
        await server.close()
        await server_client.close()
        await buyer_client.close()
        payer.solver.close()
        store.close()


async def _invoice(shop: Shop, path: str) -> dict[str, Any]:
    async with shop.http.get(shop.url + path) as response:
        assert response.status == 402
        body = await response.json()
    assert body["x402Version"] == 1
    (requirement,) = body["accepts"]
    return dict(requirement)


def _header(
    requirement: dict[str, Any],
    tx_id: bytes,
    nonce: bytes | None = None,
    signer: Keypair | None = None,
    path: str | None = None,
) -> str:
    """``X-PAYMENT`` for ``tx_id``; signed by ``signer`` for ``path`` (default: the
    requirement's resource) when given."""
    nonce = nonce or bytes.fromhex(requirement["extra"]["nonce"])
    payload = {"txId": tx_id.hex(), "nonce": nonce.hex()}
    if signer is not None:
        resource = path or resource_path(requirement["resource"])
        payload["signature"] = signer.sign(payer_message(nonce, resource)).hex()
    return encode_header(
        {"x402Version": 1, "scheme": "exact", "network": requirement["network"], "payload": payload}
    )


async def _present(shop: Shop, path: str, header: str) -> tuple[int, dict[str, Any]]:
    async with shop.http.get(shop.url + path, headers={PAYMENT_HEADER: header}) as response:
        return response.status, await response.json()


async def test_pay_then_serve_and_replay_refused(shop: Shop, tmp_path: Path) -> None:
    price = len(DATA) * PRICE_PER_BYTE
    requirement = await _invoice(shop, "/data")
    assert requirement["maxAmountRequired"] == str(price)
    assert decode_address(requirement["payTo"]) == shop.seller.address
    network_id = (await shop.client.params()).network_id
    assert requirement["network"] == f"tangle:{network_id:#x}"
    assert len(bytes.fromhex(requirement["extra"]["nonce"])) == 16

    before = (await shop.client.address(shop.seller.address)).confirmed
    session = PayingSession(shop.http, shop.payer, max_per_request=1_000, max_total=2_000)
    paid = await session.get(shop.url + "/data")
    assert (paid.status, paid.body) == (200, DATA)
    assert paid.payment is not None
    assert session.payments == [paid.payment]
    settlement = paid.settlement
    assert settlement is not None
    assert settlement["success"] is True
    assert settlement["transaction"] == paid.payment.hex()
    assert decode_address(settlement["payer"]) == shop.buyer.address
    after = (await shop.client.address(shop.seller.address)).confirmed
    assert after - before == price  # served only once confirmed

    # the same payment, presented again: for the same path and for another one
    header = _header(requirement, paid.payment)
    for path in ("/data", "/other"):
        status, body = await _present(shop, path, header)
        assert (status, body["error"]) == (402, "payment_already_used")
    # the record is on disk: a new paywall on the same file refuses it too
    again = Paywall(
        shop.paywall.client, shop.seller.address, SqliteStore(tmp_path / "consumed.sqlite3")
    )
    assert again.store.consumed(paid.payment)


async def test_underpaid_misaddressed_and_foreign_nonce_refused(shop: Shop) -> None:
    price = len(DATA) * PRICE_PER_BYTE
    third = derive_keypair(SEED, 2).address
    requirement = await _invoice(shop, "/data")
    nonce = bytes.fromhex(requirement["extra"]["nonce"])
    cases: list[tuple[dict[Address, int], bytes, str]] = [
        ({shop.seller.address: price - 1}, payment_payload(nonce), "insufficient_amount"),
        ({third: price}, payment_payload(nonce), "recipient_mismatch"),
        ({shop.seller.address: price}, payment_payload(bytes(16)), "nonce_mismatch"),
    ]
    for payments, payload, error in cases:
        tx = await shop.payer.pay(payments, payload=payload)
        status, body = await _present(shop, "/data", _header(requirement, tx.id, nonce))
        assert (status, body["error"]) == (402, error), body
        assert body["accepts"]  # a fresh requirement to pay properly
    # an invoice for one path does not pay for another
    tx = await shop.payer.pay({shop.seller.address: price}, payload=payment_payload(nonce))
    status, body = await _present(shop, "/other", _header(requirement, tx.id, nonce))
    assert (status, body["error"]) == (402, "invoice_mismatch")
    status, body = await _present(shop, "/data", "not base64 json!")
    assert (status, body["error"]) == (400, "invalid_payload")


@pytest.mark.parametrize("shop", [("--tip-wait", "600")], indirect=True)
async def test_pending_settlement_is_answered_pending_and_paid_once(shop: Shop) -> None:
    shop.paywall.settle_wait = 0  # answer at once, whatever the status
    price = len(DATA) * PRICE_PER_BYTE
    requirement = await _invoice(shop, "/data")
    nonce = bytes.fromhex(requirement["extra"]["nonce"])
    tx = await shop.payer.pay({shop.seller.address: price}, payload=payment_payload(nonce))
    status, body = await _present(shop, "/data", _header(requirement, tx.id, signer=shop.buyer))
    # with --tip-wait 600 the node approves the lone payment only once idle, >= 1 s later
    assert status == 202
    assert body == {"status": "pending", "transaction": tx.id.hex(), "retryAfterSeconds": 1}

    session = PayingSession(shop.http, shop.payer, max_per_request=1_000, max_total=2_000)
    session.poll = 0.2
    seller_before = (await shop.client.address(shop.seller.address)).pending
    answers_before = shop.paywall.pending_answers
    paid = await session.get(shop.url + "/data")
    assert (paid.status, paid.body) == (200, DATA)
    assert shop.paywall.pending_answers > answers_before  # it did see "pending"
    assert len(session.payments) == 1  # and paid only once
    assert session.spent == price
    seller_after = (await shop.client.address(shop.seller.address)).pending
    assert seller_after - seller_before == price


async def test_a_paid_invoice_is_never_evicted(shop: Shop) -> None:
    """Many fresh invoices after a payment was presented push out the oldest unpaid
    invoices only: the buyer who paid is served, never told ``unknown_invoice``."""
    shop.paywall.settle_wait = 0
    shop.paywall.max_invoices = 3
    price = len(DATA) * PRICE_PER_BYTE
    unpaid_first = await _invoice(shop, "/data")
    requirement = await _invoice(shop, "/data")
    nonce = bytes.fromhex(requirement["extra"]["nonce"])
    tx = await shop.payer.pay({shop.seller.address: price}, payload=payment_payload(nonce))
    header = _header(requirement, tx.id, signer=shop.buyer)
    status, body = await _present(shop, "/data", header)
    assert status == 202, body  # bound to the invoice now
    for _ in range(5):
        await _invoice(shop, "/data")
    invoices = shop.paywall.invoices
    assert nonce in invoices
    assert bytes.fromhex(unpaid_first["extra"]["nonce"]) not in invoices
    assert len(invoices) == 3
    session = PayingSession(shop.http, shop.payer, max_per_request=1_000, max_total=2_000)
    session.poll = 0.2
    status, served, _ = await session.present("GET", shop.url + "/data", tx.id, header)
    assert (status, served) == (200, DATA)


async def test_a_payment_seen_on_the_tangle_cannot_be_presented_by_another(
    shop: Shop,
) -> None:
    """txId and nonce are public: X-PAYMENT must carry the payer's signature of the nonce
    and the resource path, checked against the transaction's issuer."""
    price = len(DATA) * PRICE_PER_BYTE
    requirement = await _invoice(shop, "/data")
    nonce = bytes.fromhex(requirement["extra"]["nonce"])
    tx = await shop.payer.pay({shop.seller.address: price}, payload=payment_payload(nonce))
    thief = derive_keypair(SEED, 7)
    for header in (
        _header(requirement, tx.id),  # no signature
        _header(requirement, tx.id, signer=thief),  # someone else's
        _header(requirement, tx.id, signer=shop.buyer, path="/other"),  # another resource
    ):
        status, body = await _present(shop, "/data", header)
        assert (status, body["error"]) == (402, "payer_signature_invalid"), body
    assert shop.paywall.invoices[nonce].paid_by is None  # the invoice is not bound
    signed = _header(requirement, tx.id, signer=shop.buyer)
    async with shop.http.get(shop.url + "/data", headers={PAYMENT_HEADER: signed}) as response:
        assert response.status in (200, 202)  # the payer itself is served (202: pending)
        if response.status == 200:
            assert await response.read() == DATA
    assert shop.paywall.invoices.get(nonce, None) is None or (
        shop.paywall.invoices[nonce].paid_by == tx.id
    )


async def test_budget_overrun_pays_nothing(shop: Shop) -> None:
    before = (await shop.client.info())["transactions"]
    small = PayingSession(shop.http, shop.payer, max_per_request=500, max_total=10_000)
    with pytest.raises(BudgetExceeded, match="price 600 is over the per-request budget 500"):
        await small.get(shop.url + "/dear")
    assert small.payments == []
    assert small.spent == 0
    assert (await shop.client.info())["transactions"] == before
    total = PayingSession(shop.http, shop.payer, max_per_request=600, max_total=1_000)
    assert (await total.get(shop.url + "/dear")).body == b"dear"
    with pytest.raises(BudgetExceeded, match="take the total to 1200, over the budget 1000"):
        await total.get(shop.url + "/dear")
    assert len(total.payments) == 1
    assert total.spent == 600
    # the client refuses to loop: a refused payment raises, it does not pay again
    replay = _header(await _invoice(shop, "/dear"), total.payments[0])
    with pytest.raises(PaymentRefused, match="payment_already_used"):
        await total.present("GET", shop.url + "/dear", total.payments[0], replay)
    assert len(total.payments) == 1


def test_header_codec_round_trips() -> None:
    value = {"a": "1", "b": [1, 2]}
    assert decode_header(encode_header(value)) == value
    with pytest.raises(ValueError, match="not base64 JSON"):
        decode_header("%%%")
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_header(encode_header([1]))  # type: ignore[arg-type]
