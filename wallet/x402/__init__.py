"""HTTP 402 payments over the tangle, x402 v1 style, and per-byte streams (docs/PAYMENTS.md).

- :mod:`~wallet.x402.protocol`: the headers, requirements and the checks of a presented
  payment (pure: no network, no files, no clock);
- :mod:`~wallet.x402.stores`: the paywall's open invoices and its record of consumed
  payments (in memory, or SQLite so a restart cannot re-serve a payment);
- :mod:`~wallet.x402.server`: :class:`Paywall`, the 402 for aiohttp servers;
- :mod:`~wallet.x402.client`: :class:`PayingSession`, which pays within budgets;
- :mod:`~wallet.x402.streams`: a deposit, then a signed voucher per window, and a refund.

The errors live in :mod:`wallet.errors` (``PaymentError`` and below, ``VoucherRefused``)
and are re-exported here, where they were before.
"""

from wallet.errors import (
    BudgetExceeded,
    PaymentError,
    PaymentPending,
    PaymentRefused,
    VoucherRefused,
)
from wallet.x402.client import PaidResponse, PayingSession
from wallet.x402.protocol import (
    NONCE_SIZE,
    PAYER_SIGNATURE_TAG,
    PAYLOAD_MAGIC,
    PAYMENT_HEADER,
    RESPONSE_HEADER,
    X402_VERSION,
    Invoice,
    Refusal,
    decode_header,
    encode_header,
    network_name,
    payer_message,
    payment_payload,
    resource_path,
)
from wallet.x402.server import Paywall, Settled
from wallet.x402.stores import (
    MAX_INVOICES,
    ConsumedStore,
    InvoiceStore,
    MemoryStore,
    SqliteStore,
)
from wallet.x402.streams import (
    REFUND_MAGIC,
    VOUCHER_HEADER,
    StreamResult,
    StreamSeller,
    StreamSession,
    Voucher,
    VoucherRule,
    buy_stream,
    bytes_covered,
    price_of,
    sign_voucher,
    voucher_from_header,
)

__all__ = [
    "MAX_INVOICES",
    "NONCE_SIZE",
    "PAYER_SIGNATURE_TAG",
    "PAYLOAD_MAGIC",
    "PAYMENT_HEADER",
    "REFUND_MAGIC",
    "RESPONSE_HEADER",
    "VOUCHER_HEADER",
    "X402_VERSION",
    "BudgetExceeded",
    "ConsumedStore",
    "Invoice",
    "InvoiceStore",
    "MemoryStore",
    "PaidResponse",
    "PayingSession",
    "PaymentError",
    "PaymentPending",
    "PaymentRefused",
    "Paywall",
    "Refusal",
    "Settled",
    "SqliteStore",
    "StreamResult",
    "StreamSeller",
    "StreamSession",
    "Voucher",
    "VoucherRefused",
    "VoucherRule",
    "buy_stream",
    "bytes_covered",
    "decode_header",
    "encode_header",
    "network_name",
    "payer_message",
    "payment_payload",
    "price_of",
    "resource_path",
    "sign_voucher",
    "voucher_from_header",
]
