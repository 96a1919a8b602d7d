"""The paywall: HTTP 402 for aiohttp servers, settled on the tangle (docs/PAYMENTS.md).

:class:`Paywall` answers an unpaid request with ``402`` and a requirement (an invoice
with a fresh nonce), and accepts an ``X-PAYMENT`` header naming a transaction that pays
``payTo`` at least the price (:mod:`wallet.x402.protocol` checks it). A payment still
pending on the tangle gets ``202`` + ``{"status": "pending"}``, never a fresh 402, so a
client retries with the same payment instead of paying twice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tangle.address import Address
from tangle.errors import TangleError
from tangle.hashing import address_of
from tangle.schema import Status
from tangle.transaction import Transaction, TxId, decode
from wallet.audit import fetch_transaction
from wallet.client import NodeClient
from wallet.errors import AuditError, MalformedAnswer, NodeError
from wallet.x402.protocol import (
    EXACT,
    NONCE_SIZE,
    PAYMENT_HEADER,
    RESPONSE_HEADER,
    Invoice,
    Problem,
    Refusal,
    check_envelope,
    check_invoice,
    check_payment,
    network_name,
    parse_payment,
    received_by,
    required_body,
    requirement_json,
    settlement_header,
)
from wallet.x402.stores import MAX_INVOICES, ConsumedStore, InvoiceStore, MemoryStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Settled:
    """A confirmed payment, claimed for one request."""

    tx: Transaction
    amount: int
    payer: Address
    header: str
    """The ``X-PAYMENT-RESPONSE`` value to send with the resource."""


def _answer(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers=headers or None)


@dataclass
class Paywall:
    """Sells resources for payments to ``pay_to``, checked through the node at ``client``."""

    client: NodeClient
    pay_to: Address
    store: ConsumedStore = field(default_factory=MemoryStore)
    max_timeout_seconds: int = 120
    settle_wait: float = 2.0
    """Seconds to wait for a pending payment to confirm before answering 202."""
    poll: float = 0.2
    clock: Callable[[], float] = time.monotonic
    invoices: InvoiceStore = field(default_factory=InvoiceStore)
    max_invoices: int = MAX_INVOICES
    """Invoices kept at most before the oldest unpaid are forgotten; invoices a payment
    was presented for (``paid_by``) are kept until settled, even beyond this."""
    pending_answers: int = 0
    """How many 202 "pending" answers were given (for monitoring)."""

    async def requirement(
        self,
        request: web.Request,
        *,
        amount: int,
        scheme: str = EXACT,
        description: str = "",
        mime_type: str = "application/octet-stream",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One ``accepts`` entry, with a fresh invoice nonce in ``extra``."""
        params = await self.client.params()
        now = self.clock()
        invoice = Invoice(
            secrets.token_bytes(NONCE_SIZE),
            str(request.rel_url),
            scheme,
            amount,
            now + self.max_timeout_seconds,
        )
        self.invoices.add(invoice, now, self.max_invoices)
        return requirement_json(
            invoice,
            network_id=params.network_id,
            pay_to=self.pay_to,
            url=str(request.url),
            max_timeout_seconds=self.max_timeout_seconds,
            description=description,
            mime_type=mime_type,
            extra=extra,
        )

    async def required(
        self, request: web.Request, error: str, message: str, **terms: Any
    ) -> web.Response:
        """A 402 with a fresh requirement; ``error`` says why the last attempt failed."""
        accepts = [await self.requirement(request, **terms)]
        return _answer(402, required_body(error, message, accepts))

    async def _refuse(self, request: web.Request, problem: Problem, **terms: Any) -> web.Response:
        return await self.required(request, problem.error, problem.message, **terms)

    async def settle(self, request: web.Request, **terms: Any) -> Settled | web.Response:
        """Check the request's payment: :class:`Settled`, or the response to send instead.

        ``terms`` are those of :meth:`requirement` (``amount``, ``scheme``, ...). The
        payment is claimed in the store before this returns, so serve it.
        """
        header = request.headers.get(PAYMENT_HEADER)
        if header is None:
            return await self.required(
                request, Refusal.PAYMENT_REQUIRED, "pay to get this", **terms
            )
        scheme = terms.get("scheme", EXACT)
        try:
            presented = parse_payment(header)
        except ValueError as exc:
            return _answer(
                400, {"error": Refusal.INVALID_PAYLOAD, "message": f"{PAYMENT_HEADER}: {exc}"}
            )
        tx_id = presented.tx_id
        params = await self.client.params()
        problem = check_envelope(presented, scheme, network_name(params.network_id))
        if problem is not None:
            return await self._refuse(request, problem, **terms)
        if await asyncio.to_thread(self.store.consumed, tx_id):
            return await self.required(
                request,
                Refusal.PAYMENT_ALREADY_USED,
                f"transaction {tx_id.hex()} already paid for another request",
                **terms,
            )
        invoice = self.invoices.get(presented.nonce)
        resource = str(request.rel_url)
        problem = check_invoice(invoice, presented, resource, scheme, self.clock())
        if problem is not None:
            return await self._refuse(request, problem, **terms)
        assert invoice is not None  # check_invoice refuses a missing one
        if presented.raw is not None:
            message = await self._submit(presented.raw, tx_id)
            if message:
                return await self.required(request, Refusal.INVALID_TRANSACTION, message, **terms)
        try:
            fetched = await fetch_transaction(self.client, tx_id)
        except AuditError as exc:
            return await self.required(request, Refusal.UNKNOWN_TRANSACTION, str(exc), **terms)
        tx = fetched.tx
        problem = check_payment(tx, presented, invoice, self.pay_to)
        if problem is not None:
            return await self._refuse(request, problem, **terms)
        invoice.paid_by = tx_id  # from now on this invoice waits for this payment only
        status = await self._wait(tx_id, fetched.status)
        if status == Status.PENDING:
            self.pending_answers += 1
            return _answer(
                202,
                {"status": Status.PENDING, "transaction": tx_id.hex(), "retryAfterSeconds": 1},
                **{"Retry-After": "1"},
            )
        if status != Status.CONFIRMED:
            self.invoices.pop(presented.nonce)
            return await self.required(
                request, Refusal.INVALID_TRANSACTION_STATE, f"the payment is {status}", **terms
            )
        received = received_by(tx, self.pay_to)
        if not await asyncio.to_thread(self.store.claim, tx_id, resource, received):
            return await self.required(
                request, Refusal.PAYMENT_ALREADY_USED, "the payment was just used", **terms
            )
        self.invoices.pop(presented.nonce)
        payer = Address(address_of(tx.issuer))
        header = settlement_header(tx_id, params.network_id, payer, received)
        return Settled(tx=tx, amount=received, payer=payer, header=header)

    async def _submit(self, raw: bytes, tx_id: TxId) -> str:
        """Submit a presented transaction's bytes; what was wrong, or "" when taken."""
        try:
            tx = decode(raw)
        except TangleError as exc:
            return f"the raw transaction does not decode: {exc}"
        if tx.id != tx_id:
            return "the raw transaction is not the one named by txId"
        try:
            await self.client.submit(tx)
        except NodeError as exc:
            return f"the node refused the transaction: {exc.message}"
        except MalformedAnswer as exc:
            return f"the node's answer to the transaction is not its API's: {exc}"
        return ""

    async def _wait(self, tx_id: TxId, status: str) -> str:
        deadline = self.clock() + self.settle_wait
        while status == Status.PENDING and self.clock() < deadline:
            await asyncio.sleep(self.poll)
            status = (await self.client.statuses([tx_id])).get(tx_id) or "unknown"
        return status

    def exact(
        self,
        amount: int | Callable[[web.Request], int],
        *,
        description: str = "",
        mime_type: str = "application/octet-stream",
    ) -> Callable[[Handler], Handler]:
        """Decorate a handler so it runs only for a settled payment of ``amount`` (or
        ``amount(request)``, e.g. bytes × price per byte)."""

        def wrap(handler: Handler) -> Handler:
            async def paid(request: web.Request) -> web.StreamResponse:
                price = amount(request) if callable(amount) else amount
                result = await self.settle(
                    request, amount=price, description=description, mime_type=mime_type
                )
                if isinstance(result, web.Response):
                    return result
                response = await handler(request)
                response.headers[RESPONSE_HEADER] = result.header
                return response

            return paid

        return wrap
