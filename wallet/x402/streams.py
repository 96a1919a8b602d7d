"""Per-byte streams paid with one deposit and signed cumulative vouchers.

The client pays a deposit through the x402 flow (scheme ``metered``); the server opens a
session keyed to the deposit's issuer and serves the stream one window at a time. Before
each further window, and at close, the client signs a :class:`Voucher`: "in session S,
voucher number n, I owe A in all" (Ed25519 over a canonical encoding), where A must be
exactly :func:`price_of` the bytes served so far. At close the server keeps what the last
voucher covers and refunds the rest of the deposit on the ledger. The server never
serves past what the deposit covers, so vouchers never exceed it. docs/PAYMENTS.md.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web

from tangle.address import Address, encode_address
from tangle.errors import InvalidSignature
from tangle.hashing import address_of
from tangle.signing import Keypair, verify_signature
from tangle.transaction import TxId
from wallet.errors import PaymentRefused, VoucherRefused
from wallet.payments import Payer
from wallet.x402.client import PayingSession, refusal_of
from wallet.x402.protocol import RESPONSE_HEADER, Refusal
from wallet.x402.server import Paywall, Settled

VOUCHER_TAG = b"tangle/x402-voucher/v1\x00"
"""Domain tag before the bytes a voucher signs."""
VOUCHER_HEADER = "X-VOUCHER"
SESSION_ID_SIZE = 16
REFUND_MAGIC = b"X4RF"
"""A refund's payload: these 4 bytes, then the 16-byte session id."""
METERED = "metered"
"""The x402 scheme of a stream's deposit."""
_VOUCHER = struct.Struct(">16sQQ")


class VoucherRule(StrEnum):
    """The ``code`` of a :class:`~wallet.errors.VoucherRefused`: the rule a voucher broke."""

    INVALID_VOUCHER = "invalid_voucher"
    WRONG_SESSION = "wrong_session"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED_SEQUENCE = "replayed_sequence"
    SEQUENCE_GAP = "sequence_gap"
    AMOUNT_DECREASED = "amount_decreased"
    AMOUNT_OVER_SERVED = "amount_over_served"
    AMOUNT_SHORT = "amount_short"
    VOUCHER_REQUIRED = "voucher_required"
    SESSION_CLOSED = "session_closed"
    UNKNOWN_SESSION = "unknown_session"


def price_of(nbytes: int, price: int, per_bytes: int) -> int:
    """What ``nbytes`` cost at ``price`` per ``per_bytes`` bytes: the exact product
    ``nbytes × price / per_bytes`` rounded *up* to a whole smallest unit, so the seller is
    never short by a fraction and the buyer pays at most 1 unit over the exact product."""
    return -(-nbytes * price // per_bytes)


def bytes_covered(deposit: int, price: int, per_bytes: int) -> int:
    """The most bytes whose :func:`price_of` fits in ``deposit``."""
    return deposit * per_bytes // price


@dataclass(frozen=True, slots=True, kw_only=True)
class Voucher:
    session: bytes
    """16 bytes: the session id the server gave at opening."""
    sequence: int
    """u64: 1 for the first voucher, then +1 each."""
    amount: int
    """u64, smallest units: everything owed in the session so far (cumulative)."""
    signature: bytes = b""
    """64 bytes: the deposit issuer's Ed25519 signature of :meth:`message`."""

    def message(self) -> bytes:
        return VOUCHER_TAG + _VOUCHER.pack(self.session, self.sequence, self.amount)

    def to_header(self) -> str:
        return json.dumps(
            {
                "session": self.session.hex(),
                "sequence": self.sequence,
                "amount": str(self.amount),
                "signature": self.signature.hex(),
            },
            separators=(",", ":"),
        )


def sign_voucher(key: Keypair, session: bytes, sequence: int, amount: int) -> Voucher:
    unsigned = Voucher(session=session, sequence=sequence, amount=amount)
    return Voucher(
        session=session, sequence=sequence, amount=amount, signature=key.sign(unsigned.message())
    )


def voucher_from_header(text: str) -> Voucher:
    """Raises VoucherRefused(``invalid_voucher``) for anything malformed."""
    try:
        value = json.loads(text)
        voucher = Voucher(
            session=bytes.fromhex(value["session"]),
            sequence=int(value["sequence"]),
            amount=int(value["amount"]),
            signature=bytes.fromhex(value["signature"]),
        )
        _VOUCHER.pack(voucher.session, voucher.sequence, voucher.amount)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise VoucherRefused(VoucherRule.INVALID_VOUCHER, f"{VOUCHER_HEADER}: {exc}") from None
    if len(voucher.session) != SESSION_ID_SIZE:
        raise VoucherRefused(VoucherRule.INVALID_VOUCHER, "session: expected 16 bytes")
    return voucher


@dataclass
class StreamSession:
    """The server's state of one session: pure, no I/O."""

    session: bytes
    payer_key: bytes
    """The deposit issuer's public key: it must sign every voucher."""
    deposit: int
    price: int
    per_bytes: int
    window: int
    size: int
    """Bytes in the stream."""
    served: int = 0
    sequence: int = 0
    vouched: int = 0
    closed: bool = False

    @property
    def refund_to(self) -> Address:
        return Address(address_of(self.payer_key))

    @property
    def limit(self) -> int:
        """The end of what may ever be served: the stream, or what the deposit covers."""
        return min(self.size, bytes_covered(self.deposit, self.price, self.per_bytes))

    def accept(self, voucher: Voucher) -> None:
        """Take a voucher, or raise :class:`VoucherRefused` naming the broken rule."""
        if voucher.session != self.session:
            raise VoucherRefused(VoucherRule.WRONG_SESSION, "the voucher is for another session")
        try:
            verify_signature(self.payer_key, voucher.message(), voucher.signature)
        except InvalidSignature:
            raise VoucherRefused(
                VoucherRule.BAD_SIGNATURE, "not signed by the key that paid the deposit"
            ) from None
        if voucher.sequence <= self.sequence:
            raise VoucherRefused(
                VoucherRule.REPLAYED_SEQUENCE,
                f"sequence {voucher.sequence} was already used (last {self.sequence})",
            )
        if voucher.sequence != self.sequence + 1:
            raise VoucherRefused(
                VoucherRule.SEQUENCE_GAP,
                f"expected sequence {self.sequence + 1}, got {voucher.sequence}",
            )
        if voucher.amount < self.vouched:
            raise VoucherRefused(
                VoucherRule.AMOUNT_DECREASED,
                f"cumulative amount {voucher.amount} is below the {self.vouched} already vouched",
            )
        due = price_of(self.served, self.price, self.per_bytes)
        if voucher.amount > due:
            raise VoucherRefused(
                VoucherRule.AMOUNT_OVER_SERVED,
                f"{voucher.amount} is more than the {due} that {self.served} bytes cost",
            )
        if voucher.amount < due:
            raise VoucherRefused(
                VoucherRule.AMOUNT_SHORT,
                f"{voucher.amount} does not cover the {due} that {self.served} bytes cost",
            )
        self.sequence, self.vouched = voucher.sequence, voucher.amount

    def next_window(self) -> tuple[int, int]:
        """(start, end) of the window to serve now.

        Raises:
            VoucherRefused: ``voucher_required`` while served bytes are not all vouched.
        """
        if self.closed:
            raise VoucherRefused(VoucherRule.SESSION_CLOSED, "the session is closed")
        if self.vouched != price_of(self.served, self.price, self.per_bytes):
            raise VoucherRefused(
                VoucherRule.VOUCHER_REQUIRED,
                f"send a voucher for the {self.served} bytes served before the next window",
            )
        return self.served, min(self.served + self.window, self.limit)

    def settlement(self) -> tuple[int, int]:
        """(kept, refund) at close: the last voucher's amount, and the rest of the deposit."""
        return self.vouched, self.deposit - self.vouched


@dataclass
class StreamSeller:
    """aiohttp routes selling ``content`` per byte: open (402 → deposit), windows, close.

    ``refunder`` is the seller's :class:`Payer` (its key owns ``paywall.pay_to``).
    """

    paywall: Paywall
    refunder: Payer
    content: bytes
    price: int
    per_bytes: int = 1
    window: int = 4096
    windows_per_deposit: int = 2
    sessions: dict[bytes, StreamSession] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def deposit(self) -> int:
        return price_of(self.window * self.windows_per_deposit, self.price, self.per_bytes)

    def add_routes(self, app: web.Application, path: str) -> None:
        app.router.add_get(path, self.open)
        app.router.add_get(path + "/{session}/window", self.serve_window)
        app.router.add_post(path + "/{session}/close", self.close)

    def terms(self) -> dict[str, Any]:
        return {
            "unit": "byte",
            "price": str(self.price),
            "perBytes": self.per_bytes,
            "windowBytes": self.window,
            "deposit": str(self.deposit),
            "size": len(self.content),
        }

    async def open(self, request: web.Request) -> web.StreamResponse:
        result = await self.paywall.settle(
            request,
            amount=self.deposit,
            scheme=METERED,
            description="metered stream: deposit, then a signed voucher per window",
            extra=self.terms(),
        )
        if isinstance(result, web.Response):
            return result
        session = self._start(result)
        body = {"session": session.session.hex(), **self.terms(), "coveredBytes": session.limit}
        response = web.json_response(body)
        response.headers[RESPONSE_HEADER] = result.header
        return response

    def _start(self, settled: Settled) -> StreamSession:
        session = StreamSession(
            session=secrets.token_bytes(SESSION_ID_SIZE),
            payer_key=settled.tx.issuer,
            deposit=settled.amount,
            price=self.price,
            per_bytes=self.per_bytes,
            window=self.window,
            size=len(self.content),
        )
        self.sessions[session.session] = session
        return session

    def _session(self, request: web.Request) -> StreamSession:
        try:
            key = bytes.fromhex(request.match_info["session"])
        except ValueError:
            key = b""
        session = self.sessions.get(key)
        if session is None:
            raise VoucherRefused(VoucherRule.UNKNOWN_SESSION, "no such session")
        return session

    async def serve_window(self, request: web.Request) -> web.StreamResponse:
        async with self._lock:
            try:
                session = self._session(request)
                header = request.headers.get(VOUCHER_HEADER)
                if header is not None:
                    session.accept(voucher_from_header(header))
                start, end = session.next_window()
            except VoucherRefused as exc:
                return web.json_response({"error": exc.code, "message": str(exc)}, status=403)
            session.served = end
        return web.Response(
            body=self.content[start:end],
            headers={"X-Stream-Offset": str(start), "X-Stream-Limit": str(session.limit)},
        )

    async def close(self, request: web.Request) -> web.StreamResponse:
        async with self._lock:
            try:
                session = self._session(request)
                if session.closed:
                    raise VoucherRefused(VoucherRule.SESSION_CLOSED, "the session is closed")
                header = request.headers.get(VOUCHER_HEADER)
                if header is not None:
                    session.accept(voucher_from_header(header))
            except VoucherRefused as exc:
                return web.json_response({"error": exc.code, "message": str(exc)}, status=403)
            session.closed = True
        kept, refund = session.settlement()
        refund_tx: TxId | None = None
        if refund > 0:
            tx = await self.refunder.pay(
                {session.refund_to: refund}, payload=REFUND_MAGIC + session.session
            )
            refund_tx = tx.id
        return web.json_response(
            {
                "session": session.session.hex(),
                "served": session.served,
                "kept": str(kept),
                "refunded": str(refund),
                "refundTo": encode_address(session.refund_to),
                "refundTransaction": refund_tx.hex() if refund_tx else None,
            }
        )


@dataclass(frozen=True, slots=True)
class StreamResult:
    data: bytes
    deposit_tx: TxId
    closing: dict[str, Any]
    """The server's answer to close: served, kept, refunded, refundTransaction."""


async def buy_stream(paying: PayingSession, url: str) -> StreamResult:
    """Open a metered stream at ``url`` (paying its deposit within budget), read every
    window it covers with a voucher per window, and close it.

    Raises:
        BudgetExceeded: the deposit is over budget; nothing was paid.
        PaymentRefused: the server refused the deposit or a voucher.
    """
    status, body, _ = await paying.send("GET", url)
    if status != 402:
        raise PaymentRefused(Refusal.NOT_METERED, f"expected 402 from {url}, got {status}")
    requirement = paying.choose(json.loads(body), await paying.network(), scheme=METERED)
    terms = requirement["extra"]
    price, per_bytes = int(terms["price"]), int(terms["perBytes"])
    tx_id, header = await paying.pay(requirement)
    status, body, _ = await paying.present("GET", url, tx_id, header)
    opened = json.loads(body)
    session = bytes.fromhex(opened["session"])
    limit = int(opened["coveredBytes"])
    key = paying.payer.keypair
    data = bytearray()
    sequence = 0
    voucher: Voucher | None = None
    base = url.rstrip("/") + "/" + session.hex()
    while len(data) < limit:
        headers = {VOUCHER_HEADER: voucher.to_header()} if voucher else None
        status, chunk, _ = await paying.send("GET", base + "/window", headers)
        if status != 200:
            raise refusal_of(chunk)
        if not chunk:
            break
        data += chunk
        sequence += 1
        voucher = sign_voucher(key, session, sequence, price_of(len(data), price, per_bytes))
    headers = {VOUCHER_HEADER: voucher.to_header()} if voucher else None
    status, body, _ = await paying.send("POST", base + "/close", headers)
    if status != 200:
        raise refusal_of(body)
    closing = json.loads(body)
    return StreamResult(data=bytes(data), deposit_tx=tx_id, closing=closing)
