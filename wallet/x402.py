"""HTTP 402 payments over the tangle, x402 v1 style: a paywall for aiohttp servers and a
paying client session (wallet layer).

Server: :class:`Paywall` answers an unpaid request with ``402`` and a JSON body listing
what to pay (an invoice with a fresh nonce), and accepts an ``X-PAYMENT`` header naming
a transaction that pays ``payTo`` at least the price and carries the nonce in its
payload, with the issuer's signature of the nonce and resource path (the transaction and
nonce are public; the signature shows the presenter is the payer). A payment still
pending on the tangle gets ``202`` + ``{"status": "pending"}``, never a fresh 402, so a
client retries with the same payment instead of paying twice.
Client: :class:`PayingSession` pays within a budget and retries. docs/PAYMENTS.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tangle.address import Address, decode_address, encode_address
from tangle.errors import InvalidSignature, TangleError
from tangle.hashing import address_of
from tangle.signing import verify_signature
from tangle.transaction import Transaction, TxId, decode
from wallet.audit import AuditError, fetch_transaction, paid_to
from wallet.client import NodeClient
from wallet.errors import NodeError, WalletError
from wallet.payments import Payer

X402_VERSION = 1
PAYMENT_HEADER = "X-PAYMENT"
RESPONSE_HEADER = "X-PAYMENT-RESPONSE"
NONCE_SIZE = 16
PAYLOAD_MAGIC = b"X402"
"""A payment's payload: these 4 bytes, then the 16-byte invoice nonce."""
PAYER_SIGNATURE_TAG = b"tangle/x402-payer/v1\x00"
"""Domain tag before the nonce and resource path the payment's issuer signs."""
MAX_INVOICES = 10_000
"""Invoices kept at most (the default of :attr:`Paywall.max_invoices`); the oldest unpaid
ones are forgotten first, an invoice a payment was presented for never."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PaymentError(WalletError):
    """An x402 payment went wrong on the client's side."""


class BudgetExceeded(PaymentError):
    """The price is over the per-request or total budget; nothing was paid."""


class PaymentRefused(PaymentError):
    """The server refused the payment presented (``code`` says why); do not pay again."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the server refused the payment ({code}): {message}")
        self.code = code


class PaymentPending(PaymentError):
    """The payment did not settle within the wait; retry later with the same payment."""

    def __init__(self, tx_id: str) -> None:
        super().__init__(f"payment {tx_id} is still pending; retry with the same payment")
        self.tx_id = tx_id


def network_name(network_id: int) -> str:
    return f"tangle:{network_id:#x}"


def encode_header(value: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def decode_header(text: str) -> dict[str, Any]:
    """The JSON object in a base64 header; raises ValueError when it is not one."""
    try:
        value = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not base64 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def payment_payload(nonce: bytes) -> bytes:
    return PAYLOAD_MAGIC + nonce


def payer_message(nonce: bytes, resource: str) -> bytes:
    """What the payment's issuer signs in ``X-PAYMENT``: tag || nonce || resource path
    (the path and query of the resource, as in the invoice). The transaction and the
    nonce are public on the tangle; only the payer can make this signature."""
    return PAYER_SIGNATURE_TAG + nonce + resource.encode()


def resource_path(url: str) -> str:
    """The path and query of a requirement's ``resource`` URL (what the payer signs)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# -- the record of consumed payments --------------------------------------------------------


class ConsumedStore(Protocol):
    """Where a paywall records the payments it has served; claims must be atomic."""

    def claim(self, tx_id: TxId, resource: str, amount: int) -> bool:
        """Record ``tx_id``; False when it was already recorded."""
        ...

    def consumed(self, tx_id: TxId) -> bool: ...


class MemoryStore:
    """Consumed payments in memory: for tests and servers that may forget on restart."""

    def __init__(self) -> None:
        self._ids: set[TxId] = set()
        self._lock = threading.Lock()

    def claim(self, tx_id: TxId, resource: str, amount: int) -> bool:
        with self._lock:
            if tx_id in self._ids:
                return False
            self._ids.add(tx_id)
            return True

    def consumed(self, tx_id: TxId) -> bool:
        return tx_id in self._ids


class SqliteStore:
    """Consumed payments in an SQLite file, so a restart cannot re-serve a payment."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS consumed (tx_id BLOB PRIMARY KEY, resource TEXT NOT NULL,"
            " amount TEXT NOT NULL, at REAL NOT NULL)"
        )
        self._lock = threading.Lock()

    def claim(self, tx_id: TxId, resource: str, amount: int) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO consumed VALUES (?, ?, ?, ?)",
                (tx_id, resource, str(amount), time.time()),
            )
            return cursor.rowcount == 1

    def consumed(self, tx_id: TxId) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM consumed WHERE tx_id = ?", (tx_id,)).fetchone()
        return row is not None

    def close(self) -> None:
        self._db.close()


# -- the server -------------------------------------------------------------------------------


@dataclass
class Invoice:
    nonce: bytes
    resource: str
    scheme: str
    amount: int
    expires: float
    paid_by: TxId | None = None
    """The transaction first presented for it; only that one may settle it."""


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
    invoices: dict[bytes, Invoice] = field(default_factory=dict)
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
        scheme: str = "exact",
        description: str = "",
        mime_type: str = "application/octet-stream",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One ``accepts`` entry, with a fresh invoice nonce in ``extra``."""
        params = await self.client.params()
        now = self.clock()
        for stale in [n for n, i in self.invoices.items() if i.expires < now and not i.paid_by]:
            del self.invoices[stale]
        excess = len(self.invoices) - self.max_invoices + 1
        if excess > 0:  # the oldest unpaid go: a buyer who paid keeps their invoice
            unpaid = [n for n, i in self.invoices.items() if i.paid_by is None]
            for old in unpaid[:excess]:
                del self.invoices[old]
        nonce = secrets.token_bytes(NONCE_SIZE)
        resource = str(request.rel_url)
        self.invoices[nonce] = Invoice(
            nonce, resource, scheme, amount, now + self.max_timeout_seconds
        )
        return {
            "scheme": scheme,
            "network": network_name(params.network_id),
            "maxAmountRequired": str(amount),
            "asset": "native",
            "payTo": encode_address(self.pay_to),
            "resource": str(request.url),
            "description": description,
            "mimeType": mime_type,
            "maxTimeoutSeconds": self.max_timeout_seconds,
            "extra": {"nonce": nonce.hex(), **(extra or {})},
        }

    async def required(
        self, request: web.Request, error: str, message: str, **terms: Any
    ) -> web.Response:
        """A 402 with a fresh requirement; ``error`` says why the last attempt failed."""
        accepts = [await self.requirement(request, **terms)]
        body = {"x402Version": X402_VERSION, "error": error, "message": message}
        return _answer(402, {**body, "accepts": accepts})

    async def settle(self, request: web.Request, **terms: Any) -> Settled | web.Response:
        """Check the request's payment: :class:`Settled`, or the response to send instead.

        ``terms`` are those of :meth:`requirement` (``amount``, ``scheme``, ...). The
        payment is claimed in the store before this returns, so serve it.
        """
        header = request.headers.get(PAYMENT_HEADER)
        if header is None:
            return await self.required(request, "payment_required", "pay to get this", **terms)
        scheme = terms.get("scheme", "exact")
        try:
            envelope = decode_header(header)
            body = envelope["payload"]
            tx_id = TxId(bytes.fromhex(body["txId"]))
            nonce = bytes.fromhex(body["nonce"])
            raw = bytes.fromhex(body["tx"]) if body.get("tx") else None
            signature = bytes.fromhex(body["signature"]) if body.get("signature") else b""
            if len(tx_id) != 32 or len(nonce) != NONCE_SIZE:
                raise ValueError("txId must be 32 bytes and nonce 16")
        except (ValueError, KeyError, TypeError) as exc:
            return _answer(400, {"error": "invalid_payload", "message": f"{PAYMENT_HEADER}: {exc}"})
        params = await self.client.params()
        if envelope.get("x402Version") != X402_VERSION or envelope.get("scheme") != scheme:
            return await self.required(
                request, "invalid_scheme", f"expected x402Version 1, scheme {scheme}", **terms
            )
        if envelope.get("network") != network_name(params.network_id):
            return await self.required(
                request, "invalid_network", f"expected {network_name(params.network_id)}", **terms
            )
        if await asyncio.to_thread(self.store.consumed, tx_id):
            return await self.required(
                request,
                "payment_already_used",
                f"transaction {tx_id.hex()} already paid for another request",
                **terms,
            )
        invoice = self.invoices.get(nonce)
        resource = str(request.rel_url)
        if invoice is None or (invoice.paid_by is None and invoice.expires < self.clock()):
            return await self.required(
                request, "unknown_invoice", "the invoice nonce is unknown or expired", **terms
            )
        if invoice.resource != resource or invoice.scheme != scheme:
            return await self.required(
                request, "invoice_mismatch", f"the invoice is for {invoice.resource}", **terms
            )
        if invoice.paid_by is not None and invoice.paid_by != tx_id:
            return await self.required(
                request, "invoice_already_paid", "another transaction pays this invoice", **terms
            )
        if raw is not None:
            problem = await self._submit(raw, tx_id)
            if problem:
                return await self.required(request, "invalid_transaction", problem, **terms)
        try:
            fetched = await fetch_transaction(self.client, tx_id)
        except AuditError as exc:
            return await self.required(request, "unknown_transaction", str(exc), **terms)
        tx = fetched.tx
        if tx.payload != payment_payload(nonce):
            return await self.required(
                request, "nonce_mismatch", "the payment's payload does not carry the nonce", **terms
            )
        received = paid_to(tx, self.pay_to)
        if received == 0:
            return await self.required(
                request,
                "recipient_mismatch",
                f"the payment pays nothing to {encode_address(self.pay_to)}",
                **terms,
            )
        if received < invoice.amount:
            return await self.required(
                request,
                "insufficient_amount",
                f"the payment gives {received}, the price is {invoice.amount}",
                **terms,
            )
        try:  # the tx and nonce are public: only the payer can sign for the resource
            verify_signature(tx.issuer, payer_message(nonce, invoice.resource), signature)
        except InvalidSignature:
            return await self.required(
                request,
                "payer_signature_invalid",
                f"{PAYMENT_HEADER} needs payload.signature: the payment issuer's signature "
                "of the nonce and the resource path",
                **terms,
            )
        invoice.paid_by = tx_id  # from now on this invoice waits for this payment only
        status = await self._wait(tx_id, fetched.status)
        if status == "pending":
            self.pending_answers += 1
            return _answer(
                202,
                {"status": "pending", "transaction": tx_id.hex(), "retryAfterSeconds": 1},
                **{"Retry-After": "1"},
            )
        if status != "confirmed":
            self.invoices.pop(nonce, None)
            return await self.required(
                request, "invalid_transaction_state", f"the payment is {status}", **terms
            )
        if not await asyncio.to_thread(self.store.claim, tx_id, resource, received):
            return await self.required(
                request, "payment_already_used", "the payment was just used", **terms
            )
        self.invoices.pop(nonce, None)
        payer = address_of(tx.issuer)
        response = {
            "success": True,
            "transaction": tx_id.hex(),
            "network": network_name(params.network_id),
            "payer": encode_address(payer),
            "amount": str(received),
        }
        return Settled(tx=tx, amount=received, payer=Address(payer), header=encode_header(response))

    async def _submit(self, raw: bytes, tx_id: TxId) -> str:
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
        return ""

    async def _wait(self, tx_id: TxId, status: str) -> str:
        deadline = self.clock() + self.settle_wait
        while status == "pending" and self.clock() < deadline:
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


# -- the client -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaidResponse:
    status: int
    body: bytes
    headers: dict[str, str]
    payment: TxId | None
    """The transaction that paid for it, if one was needed."""

    @property
    def settlement(self) -> dict[str, Any] | None:
        value = self.headers.get(RESPONSE_HEADER)
        return decode_header(value) if value else None


@dataclass
class PayingSession:
    """aiohttp requests that pay a 402 within budgets, through ``payer``.

    ``max_per_request`` and ``max_total`` are in the smallest unit; a price over either
    raises :class:`BudgetExceeded` before anything is paid.
    """

    http: aiohttp.ClientSession
    payer: Payer
    max_per_request: int
    max_total: int
    pending_timeout: float = 60.0
    poll: float = 0.5
    spent: int = 0
    payments: list[TxId] = field(default_factory=list)

    def choose(self, body: Any, network: str, scheme: str = "exact") -> dict[str, Any]:
        """The ``accepts`` entry to pay, within budget.

        Raises:
            PaymentRefused: no entry for this network and scheme.
            BudgetExceeded: its price is over a budget.
        """
        accepts = body.get("accepts", []) if isinstance(body, dict) else []
        usable = [a for a in accepts if a.get("scheme") == scheme and a.get("network") == network]
        if not usable:
            raise PaymentRefused("unsupported", f"no {scheme} requirement for {network}")
        chosen: dict[str, Any] = min(usable, key=lambda a: int(a["maxAmountRequired"]))
        price = int(chosen["maxAmountRequired"])
        if price > self.max_per_request:
            raise BudgetExceeded(
                f"price {price} is over the per-request budget {self.max_per_request}; "
                "nothing was paid"
            )
        if self.spent + price > self.max_total:
            raise BudgetExceeded(
                f"price {price} would take the total to {self.spent + price}, over the "
                f"budget {self.max_total}; nothing was paid"
            )
        return chosen

    async def pay(self, requirement: dict[str, Any]) -> tuple[TxId, str]:
        """Pay one requirement; (transaction id, ``X-PAYMENT`` header value)."""
        try:
            pay_to = decode_address(requirement["payTo"])
        except TangleError as exc:
            raise PaymentRefused("invalid_requirement", f"payTo: {exc}") from None
        nonce = bytes.fromhex(requirement["extra"]["nonce"])
        price = int(requirement["maxAmountRequired"])
        resource = resource_path(str(requirement["resource"]))
        tx = await self.payer.pay({pay_to: price}, payload=payment_payload(nonce))
        self.spent += price
        self.payments.append(tx.id)
        signature = self.payer.keypair.sign(payer_message(nonce, resource))
        header = encode_header(
            {
                "x402Version": X402_VERSION,
                "scheme": requirement["scheme"],
                "network": requirement["network"],
                "payload": {
                    "txId": tx.id.hex(),
                    "nonce": nonce.hex(),
                    "signature": signature.hex(),
                },
            }
        )
        return tx.id, header

    async def send(
        self, method: str, url: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.request(method, url, headers=headers) as response:
            return response.status, await response.read(), dict(response.headers)

    async def present(
        self, method: str, url: str, tx_id: TxId, header: str
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send the request with the payment; on 202 retry the same payment until settled.

        Raises:
            PaymentRefused: the server answered 402 to the payment.
            PaymentPending: still pending after ``pending_timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pending_timeout
        while True:
            status, body, headers = await self.send(method, url, {PAYMENT_HEADER: header})
            if status == 402 or status == 400:
                error = json.loads(body) if body else {}
                raise PaymentRefused(str(error.get("error")), str(error.get("message")))
            if status != 202:
                return status, body, headers
            if loop.time() >= deadline:
                raise PaymentPending(tx_id.hex())
            await asyncio.sleep(self.poll)

    async def request(self, method: str, url: str) -> PaidResponse:
        """The response, paying once if the server asks (402)."""
        status, body, headers = await self.send(method, url)
        if status != 402:
            return PaidResponse(status, body, headers, None)
        network = network_name((await self.payer.client.params()).network_id)
        requirement = self.choose(json.loads(body), network)
        tx_id, header = await self.pay(requirement)
        status, body, headers = await self.present(method, url, tx_id, header)
        return PaidResponse(status, body, headers, tx_id)

    async def get(self, url: str) -> PaidResponse:
        return await self.request("GET", url)
