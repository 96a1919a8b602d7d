"""A metered stream against a real node: one deposit, a voucher per window, settlement
that keeps bytes × price (rounded up) and refunds the rest on the ledger; bad vouchers
refused over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tangle.transaction import TxId
from tests.functional.framework import NodeProcess
from wallet.audit import fetch_transaction, paid_to
from wallet.client import NodeClient
from wallet.keys import derive_keypair
from wallet.payments import Payer
from wallet.x402 import PayingSession, Paywall
from wallet.x402.streams import (
    REFUND_MAGIC,
    VOUCHER_HEADER,
    StreamSeller,
    buy_stream,
    price_of,
    sign_voucher,
)

pytestmark = pytest.mark.functional
SEED = bytes(range(32))
CONTENT = bytes(range(256)) * 20  # 5120 bytes


async def test_stream_settles_and_refunds(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    seller, buyer, stranger = (derive_keypair(SEED, i) for i in range(3))
    server_client, buyer_client = NodeClient(node.api), NodeClient(node.api)
    paywall = Paywall(server_client, seller.address, settle_wait=8.0, poll=0.1)
    refunder, payer = Payer(server_client, seller), Payer(buyer_client, buyer)
    shop = StreamSeller(
        paywall, refunder, CONTENT, price=3, per_bytes=10, window=2048, windows_per_deposit=3
    )
    assert shop.deposit == price_of(3 * 2048, 3, 10) == 1844  # 6144 bytes × 0.3, rounded up
    app = web.Application()
    shop.add_routes(app, "/stream")
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        await buyer_client.faucet(buyer.address, 5_000)
        paying = PayingSession(http, payer, max_per_request=2_000, max_total=4_000)
        url = str(server.make_url("/stream"))
        result = await buy_stream(paying, url)
        assert result.data == CONTENT
        kept = price_of(len(CONTENT), 3, 10)
        assert kept == 1536  # 5120 × 3 / 10 exactly
        closing = result.closing
        assert (closing["served"], closing["kept"], closing["refunded"]) == (
            5120,
            "1536",
            str(1844 - 1536),
        )
        refund = await fetch_transaction(
            buyer_client, TxId(bytes.fromhex(closing["refundTransaction"]))
        )
        assert paid_to(refund.tx, buyer.address) == 308
        assert refund.tx.issuer == seller.public_key
        assert refund.tx.payload.startswith(REFUND_MAGIC)
        assert await payer.available() == 5_000 - 1844 + 308

        # a second session: vouchers that break the rules are refused
        status, body, _ = await paying.send("GET", url)
        requirement = paying.choose(
            json.loads(body), json.loads(body)["accepts"][0]["network"], "metered"
        )
        tx_id, header = await paying.pay(requirement)
        status, body, _ = await paying.present("GET", url, tx_id, header)
        session = bytes.fromhex(json.loads(body)["session"])
        window = f"{url}/{session.hex()}/window"
        first = await paying.send("GET", window)
        assert (first[0], len(first[1])) == (200, 2048)
        owed = price_of(2048, 3, 10)
        for voucher, code in [
            (None, "voucher_required"),
            (sign_voucher(stranger, session, 1, owed), "bad_signature"),
            (sign_voucher(buyer, session, 1, owed + 1), "amount_over_served"),
            (sign_voucher(buyer, session, 1, owed - 1), "amount_short"),
            (sign_voucher(buyer, session, 2, owed), "sequence_gap"),
        ]:
            headers = {VOUCHER_HEADER: voucher.to_header()} if voucher else None
            status, body, _ = await paying.send("GET", window, headers)
            assert (status, json.loads(body)["error"]) == (403, code)
        good = sign_voucher(buyer, session, 1, owed)
        assert (await paying.send("GET", window, {VOUCHER_HEADER: good.to_header()}))[0] == 200
        status, body, _ = await paying.send("GET", window, {VOUCHER_HEADER: good.to_header()})
        assert (status, json.loads(body)["error"]) == (403, "replayed_sequence")
        # close without vouching the second window: the seller keeps only what is vouched
        async with http.post(f"{url}/{session.hex()}/close") as response:
            closing = await response.json()
        assert (closing["served"], closing["kept"], closing["refunded"]) == (
            4096,
            str(owed),
            str(1844 - owed),
        )
    finally:
        await http.close()
        await server.close()
        await server_client.close()
        await buyer_client.close()
        refunder.solver.close()
        payer.solver.close()
