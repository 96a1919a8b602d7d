"""The paying side of x402: aiohttp requests that pay a 402 within budgets.

:class:`PayingSession` asks for a resource; on a 402 it chooses the requirement for this
network (within the per-request and total budgets, or nothing is paid), pays it through
a :class:`~wallet.payments.Payer`, and presents the payment, retrying the same payment
while the server answers 202 "pending".
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tangle.address import decode_address
from tangle.errors import TangleError
from tangle.transaction import TxId
from wallet.errors import BudgetExceeded, PaymentPending, PaymentRefused, SellerUnreachable
from wallet.payments import Payer
from wallet.x402.protocol import (
    EXACT,
    PAYMENT_HEADER,
    RESPONSE_HEADER,
    Refusal,
    decode_header,
    network_name,
    payer_message,
    payment_header,
    payment_payload,
    resource_path,
)


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


def refusal_of(body: bytes) -> PaymentRefused:
    """The refusal a server's error answer (``{"error", "message"}``) states."""
    try:
        error = json.loads(body) if body else {}
    except ValueError:
        error = {"message": repr(body[:80])}
    if not isinstance(error, dict):
        error = {}
    return PaymentRefused(str(error.get("error")), str(error.get("message")))


@dataclass
class PayingSession:
    """aiohttp requests that pay a 402 within budgets, through ``payer``.

    ``max_per_request`` and ``max_total`` are in the smallest unit; a price over either
    raises :class:`~wallet.errors.BudgetExceeded` before anything is paid.
    """

    http: aiohttp.ClientSession
    payer: Payer
    max_per_request: int
    max_total: int
    pending_timeout: float = 60.0
    poll: float = 0.5
    spent: int = 0
    payments: list[TxId] = field(default_factory=list)

    async def network(self) -> str:
        """The network name requirements must name: the payer's node's."""
        return network_name((await self.payer.client.params()).network_id)

    def choose(self, body: Any, network: str, scheme: str = EXACT) -> dict[str, Any]:
        """The ``accepts`` entry to pay, within budget.

        Raises:
            PaymentRefused: no entry for this network and scheme.
            BudgetExceeded: its price is over a budget.
        """
        accepts = body.get("accepts", []) if isinstance(body, dict) else []
        usable = [a for a in accepts if a.get("scheme") == scheme and a.get("network") == network]
        if not usable:
            raise PaymentRefused(Refusal.UNSUPPORTED, f"no {scheme} requirement for {network}")
        chosen: dict[str, Any] = min(usable, key=lambda a: int(a["maxAmountRequired"]))
        price = int(chosen["maxAmountRequired"])
        if price > self.max_per_request:
            raise BudgetExceeded(price, self.max_per_request)
        if self.spent + price > self.max_total:
            raise BudgetExceeded(price, self.max_total, self.spent + price)
        return chosen

    async def pay(self, requirement: dict[str, Any]) -> tuple[TxId, str]:
        """Pay one requirement; (transaction id, ``X-PAYMENT`` header value)."""
        try:
            pay_to = decode_address(requirement["payTo"])
        except TangleError as exc:
            raise PaymentRefused(Refusal.INVALID_REQUIREMENT, f"payTo: {exc}") from None
        nonce = bytes.fromhex(requirement["extra"]["nonce"])
        price = int(requirement["maxAmountRequired"])
        resource = resource_path(str(requirement["resource"]))
        tx = await self.payer.pay({pay_to: price}, payload=payment_payload(nonce))
        self.spent += price
        self.payments.append(tx.id)
        signature = self.payer.keypair.sign(payer_message(nonce, resource))
        return tx.id, payment_header(requirement, tx.id, nonce, signature)

    async def send(
        self, method: str, url: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of one request to the seller.

        Raises:
            SellerUnreachable: no answer (aiohttp's and the OS's errors, timeouts).
        """
        try:
            async with self.http.request(method, url, headers=headers) as response:
                return response.status, await response.read(), dict(response.headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = "no answer within the timeout" if isinstance(exc, TimeoutError) else str(exc)
            raise SellerUnreachable(url, reason or type(exc).__name__) from None

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
                raise refusal_of(body)
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
        requirement = self.choose(json.loads(body), await self.network())
        tx_id, header = await self.pay(requirement)
        status, body, headers = await self.present(method, url, tx_id, header)
        return PaidResponse(status, body, headers, tx_id)

    async def get(self, url: str) -> PaidResponse:
        return await self.request("GET", url)
