"""The x402 v1 wire format over the tangle, and the checks of a presented payment (pure).

No network, no files, no clock: time comes in as an argument. The server
(:mod:`wallet.x402.server`) and the client (:mod:`wallet.x402.client`) are built on this.

- A requirement (one ``accepts`` entry of a 402 body) names the price, ``payTo`` and a
  fresh invoice nonce (``extra.nonce``).
- ``X-PAYMENT`` is base64 JSON: ``{"x402Version": 1, "scheme", "network", "payload":
  {"txId", "nonce", "signature", "tx"?}}``. The transaction pays ``payTo`` and carries
  ``X402 || nonce`` as its payload; ``signature`` is the payer's Ed25519 signature of
  :func:`payer_message` (the transaction and the nonce are public on the tangle, the
  signature shows the presenter is the payer).
- ``X-PAYMENT-RESPONSE`` is base64 JSON describing the settlement.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from tangle.address import Address, encode_address
from tangle.errors import InvalidSignature
from tangle.signing import verify_signature
from tangle.transaction import Transaction, TxId

X402_VERSION = 1
PAYMENT_HEADER = "X-PAYMENT"
RESPONSE_HEADER = "X-PAYMENT-RESPONSE"
NONCE_SIZE = 16
PAYLOAD_MAGIC = b"X402"
"""A payment's payload: these 4 bytes, then the 16-byte invoice nonce."""
PAYER_SIGNATURE_TAG = b"tangle/x402-payer/v1\x00"
"""Domain tag before the nonce and resource path the payment's issuer signs."""
EXACT = "exact"
"""The scheme of one payment per request (``metered``: a stream's deposit)."""


class Refusal(StrEnum):
    """The ``error`` of a 402 (or 400) answer: why the last attempt did not pay."""

    PAYMENT_REQUIRED = "payment_required"
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_SCHEME = "invalid_scheme"
    INVALID_NETWORK = "invalid_network"
    PAYMENT_ALREADY_USED = "payment_already_used"
    UNKNOWN_INVOICE = "unknown_invoice"
    INVOICE_MISMATCH = "invoice_mismatch"
    INVOICE_ALREADY_PAID = "invoice_already_paid"
    INVALID_TRANSACTION = "invalid_transaction"
    UNKNOWN_TRANSACTION = "unknown_transaction"
    NONCE_MISMATCH = "nonce_mismatch"
    RECIPIENT_MISMATCH = "recipient_mismatch"
    INSUFFICIENT_AMOUNT = "insufficient_amount"
    PAYER_SIGNATURE_INVALID = "payer_signature_invalid"
    INVALID_TRANSACTION_STATE = "invalid_transaction_state"
    # the client's own, when it will not pay
    UNSUPPORTED = "unsupported"
    INVALID_REQUIREMENT = "invalid_requirement"
    NOT_METERED = "not_metered"


@dataclass(frozen=True, slots=True)
class Problem:
    """A presented payment that does not pay: the refusal and what was wrong."""

    error: Refusal
    message: str


# -- the codec --------------------------------------------------------------------------


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


@dataclass
class Invoice:
    """What one requirement asked for; ``expires`` on the server's clock."""

    nonce: bytes
    resource: str
    scheme: str
    amount: int
    expires: float
    paid_by: TxId | None = None
    """The transaction first presented for it; only that one may settle it."""


def requirement_json(
    invoice: Invoice,
    *,
    network_id: int,
    pay_to: Address,
    url: str,
    max_timeout_seconds: int,
    description: str = "",
    mime_type: str = "application/octet-stream",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``accepts`` entry for ``invoice`` (``url``: the resource's full URL)."""
    return {
        "scheme": invoice.scheme,
        "network": network_name(network_id),
        "maxAmountRequired": str(invoice.amount),
        "asset": "native",
        "payTo": encode_address(pay_to),
        "resource": url,
        "description": description,
        "mimeType": mime_type,
        "maxTimeoutSeconds": max_timeout_seconds,
        "extra": {"nonce": invoice.nonce.hex(), **(extra or {})},
    }


def required_body(error: str, message: str, accepts: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a 402: why, and what to pay."""
    return {"x402Version": X402_VERSION, "error": error, "message": message, "accepts": accepts}


@dataclass(frozen=True, slots=True)
class Presented:
    """An ``X-PAYMENT`` header, decoded."""

    version: Any
    scheme: Any
    network: Any
    tx_id: TxId
    nonce: bytes
    raw: bytes | None
    """The transaction's bytes, for the server to submit (optional)."""
    signature: bytes


def parse_payment(header: str) -> Presented:
    """The payment an ``X-PAYMENT`` value presents; raises ValueError saying what is
    malformed (its fields' values are checked by :func:`check_envelope` and after)."""
    try:
        envelope = decode_header(header)
        body = envelope["payload"]
        tx_id = TxId(bytes.fromhex(body["txId"]))
        nonce = bytes.fromhex(body["nonce"])
        raw = bytes.fromhex(body["tx"]) if body.get("tx") else None
        signature = bytes.fromhex(body["signature"]) if body.get("signature") else b""
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from None
    if len(tx_id) != 32 or len(nonce) != NONCE_SIZE:
        raise ValueError(
            f"txId: expected 32 bytes, got {len(tx_id)}; nonce: expected {NONCE_SIZE}, "
            f"got {len(nonce)}"
        )
    return Presented(
        version=envelope.get("x402Version"),
        scheme=envelope.get("scheme"),
        network=envelope.get("network"),
        tx_id=tx_id,
        nonce=nonce,
        raw=raw,
        signature=signature,
    )


def payment_header(requirement: dict[str, Any], tx_id: TxId, nonce: bytes, signature: bytes) -> str:
    """The ``X-PAYMENT`` value presenting ``tx_id`` for ``requirement``."""
    return encode_header(
        {
            "x402Version": X402_VERSION,
            "scheme": requirement["scheme"],
            "network": requirement["network"],
            "payload": {"txId": tx_id.hex(), "nonce": nonce.hex(), "signature": signature.hex()},
        }
    )


def settlement_header(tx_id: TxId, network_id: int, payer: Address, amount: int) -> str:
    """The ``X-PAYMENT-RESPONSE`` value sent with the resource."""
    return encode_header(
        {
            "success": True,
            "transaction": tx_id.hex(),
            "network": network_name(network_id),
            "payer": encode_address(payer),
            "amount": str(amount),
        }
    )


# -- the checks, in the order the server makes them -------------------------------------


def check_envelope(presented: Presented, scheme: str, network: str) -> Problem | None:
    if presented.version != X402_VERSION or presented.scheme != scheme:
        return Problem(
            Refusal.INVALID_SCHEME, f"expected x402Version {X402_VERSION}, scheme {scheme}"
        )
    if presented.network != network:
        return Problem(Refusal.INVALID_NETWORK, f"expected {network}")
    return None


def check_invoice(
    invoice: Invoice | None, presented: Presented, resource: str, scheme: str, now: float
) -> Problem | None:
    """The invoice the payment names, for this resource and scheme, still open at ``now``
    (an invoice a payment was presented for stays open), and not bound to another."""
    if invoice is None or (invoice.paid_by is None and invoice.expires < now):
        return Problem(Refusal.UNKNOWN_INVOICE, "the invoice nonce is unknown or expired")
    if invoice.resource != resource or invoice.scheme != scheme:
        return Problem(Refusal.INVOICE_MISMATCH, f"the invoice is for {invoice.resource}")
    if invoice.paid_by is not None and invoice.paid_by != presented.tx_id:
        return Problem(Refusal.INVOICE_ALREADY_PAID, "another transaction pays this invoice")
    return None


def received_by(tx: Transaction, address: Address) -> int:
    """What ``tx`` pays to ``address`` (0 when nothing)."""
    return sum(o.amount for o in tx.outputs if o.address == address)


def check_payment(
    tx: Transaction, presented: Presented, invoice: Invoice, pay_to: Address
) -> Problem | None:
    """The transaction carries the nonce, pays ``pay_to`` at least the price, and the
    presenter signed the nonce and resource with the transaction's issuer key."""
    if tx.payload != payment_payload(presented.nonce):
        return Problem(Refusal.NONCE_MISMATCH, "the payment's payload does not carry the nonce")
    received = received_by(tx, pay_to)
    if received == 0:
        return Problem(
            Refusal.RECIPIENT_MISMATCH, f"the payment pays nothing to {encode_address(pay_to)}"
        )
    if received < invoice.amount:
        return Problem(
            Refusal.INSUFFICIENT_AMOUNT,
            f"the payment gives {received}, the price is {invoice.amount}",
        )
    try:
        verify_signature(
            tx.issuer, payer_message(presented.nonce, invoice.resource), presented.signature
        )
    except InvalidSignature:
        return Problem(
            Refusal.PAYER_SIGNATURE_INVALID,
            f"{PAYMENT_HEADER} needs payload.signature: the payment issuer's signature "
            "of the nonce and the resource path",
        )
    return None
