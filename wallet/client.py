"""An asyncio client of the node's HTTP API (docs/NODE.md), with plain errors.

This is the wallet's one HTTP boundary. Every call raises
:class:`~wallet.errors.NodeUnreachable` when there is no answer (aiohttp's and the OS's
errors, timeouts), :class:`~wallet.errors.NodeError` (status, code, message, extra
fields) when the node answers with an error object, and
:class:`~wallet.errors.MalformedAnswer` when an answer is not of the shape
:mod:`tangle.schema` documents. Amounts come back as ints; ids as :class:`TxId`.

A node that is behind answers 503 ``overloaded`` with ``Retry-After`` before it does
anything with a request: the client waits that long, times a random factor in
[0.5, 1.5) so that many devices do not come back at once, and asks again, for up to
``patience`` seconds; then the 503 is raised. A 503 ``storage_unavailable`` (the node did
the work but could not commit it) is asked again only for requests whose repetition
does nothing new: reads, and submissions of a transaction's bytes (never the faucet).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import orjson

from tangle import schema
from tangle.address import Address, encode_address
from tangle.retry import RETRY_PATIENCE, retry_wait
from tangle.schema import AddressView, OutputView, SchemaError, Status
from tangle.transaction import OutputId, Transaction, TxId
from tangle.validation import NetworkParams
from wallet.errors import MalformedAnswer, NodeError, NodeUnreachable

DEFAULT_NODE = "http://127.0.0.1:14265"
DEFAULT_TIMEOUT = 30.0
STATUS_CHUNK = 1000
"""Ids per ``POST /transactions/statuses`` (the node's limit)."""
IDEMPOTENT = (
    f"{schema.API_PREFIX}/transactions",
    f"{schema.API_PREFIX}/transactions/statuses",
)
"""POST paths whose repetition does nothing new (the same bytes are the same transaction;
a status query is a read)."""

OutputInfo = OutputView
"""An output as the node reports it (:class:`tangle.schema.OutputView`)."""
AddressInfo = AddressView
"""An address's balances and outputs (:class:`tangle.schema.AddressView`)."""

T = TypeVar("T")
API = schema.API_PREFIX


def _read(what: str, parse: Callable[[Any], T], body: Any) -> T:
    """``parse(body)``; a body not of the documented shape is a :class:`MalformedAnswer`."""
    try:
        return parse(body)
    except SchemaError as exc:
        raise MalformedAnswer(what, str(exc)) from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SchemaError("body", "a JSON object", type(body).__name__)
    return body


def _transaction(body: Any) -> dict[str, Any]:
    """A transaction answer: an object whose ``metadata`` has the documented shape."""
    answer = _object(body)
    schema.metadata_from_json(answer.get("metadata"))
    return answer


def _params(info: Any) -> NetworkParams:
    """The network's id and base difficulty from ``GET /info``."""
    network_id, base = schema.network_params_from_json(info)
    try:
        return NetworkParams(network_id=network_id, base_difficulty=base)
    except ValueError as exc:
        raise SchemaError("network", "a u64 id and 0..256 bits", str(exc)) from None


class NodeClient:
    """One node's API. Use ``async with NodeClient(url) as node:`` or call :meth:`close`."""

    def __init__(
        self,
        url: str = DEFAULT_NODE,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        patience: float = RETRY_PATIENCE,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.patience = patience
        self._rng = rng or random.Random(secrets.randbits(64))
        self._sleep = sleep
        self.retried = 0
        """Requests asked again after a ``Retry-After`` (a device's view of overload)."""
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._params: NetworkParams | None = None

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _unreachable(self, exc: BaseException) -> NodeUnreachable:
        if isinstance(exc, TimeoutError):
            return NodeUnreachable(self.url, "no answer within the timeout")
        return NodeUnreachable(self.url, str(exc) or type(exc).__name__)

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body) for a 2xx answer; errors raise. A 503 with
        ``Retry-After`` is asked again after a jittered wait, for up to ``patience`` s."""
        deadline = time.monotonic() + self.patience
        idempotent = method == "GET" or path in IDEMPOTENT
        while True:
            try:
                return await self._request_once(method, path, json=json, params=params)
            except NodeError as exc:
                wait = retry_wait(
                    exc.status,
                    exc.code,
                    exc.extra.get("retry_after_s"),
                    self._rng,
                    idempotent=idempotent,
                )
                if wait is None or time.monotonic() + wait > deadline:
                    raise
            self.retried += 1
            await self._sleep(wait)

    async def _request_once(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        url = f"{self.url}{path}"
        data = None if json is None else orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(
                method, url, data=data, headers=headers, params=params
            ) as response:
                raw = await response.read()
                status = response.status
                later = response.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            if status < 400:
                raise MalformedAnswer(
                    f"{method} {path.removeprefix(API)}", f"expected JSON, got {raw[:80]!r}", status
                ) from None
            body = None  # an error answer without an error object: its text is the message
        if status >= 400:
            error = schema.error_from_json(body, raw.decode(errors="replace")[:200])
            extra = dict(error.extra)
            if later is not None and later.isdigit():
                extra.setdefault("retry_after_s", int(later))
            raise NodeError(status, error.code, error.message, extra)
        return status, body

    # -- the API ---------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        _, body = await self.request("GET", f"{API}/info")
        return _read("GET /info", _object, body)

    async def params(self) -> NetworkParams:
        """The network's id and base difficulty (asked once, then kept)."""
        if self._params is None:
            self._params = _read("GET /info", _params, await self.info())
        return self._params

    async def tips(self, approve: Iterable[TxId] = ()) -> tuple[TxId, TxId]:
        """Trunk and branch; with ``approve``, a pair that sees those transactions."""
        wanted = ",".join(dict.fromkeys(t.hex() for t in approve))
        _, body = await self.request(
            "GET", f"{API}/tips", params={"approve": wanted} if wanted else None
        )
        return _read("GET /tips", schema.tips_from_json, body)

    async def submit(self, tx: Transaction) -> bool:
        """Submit; True when the node stored it now (201), False if it already had it."""
        status, _ = await self.request(
            "POST", f"{API}/transactions", json={"raw": tx.encode().hex()}
        )
        return status == 201

    async def transaction(self, tx_id: TxId) -> dict[str, Any]:
        """The decoded transaction with its ``metadata`` (status, confidence, weight,
        advice) as the node sends it; :func:`tangle.schema.transaction_view_from_json`
        reads the transaction out of it (:mod:`wallet.audit`)."""
        _, body = await self.request("GET", f"{API}/transactions/{tx_id.hex()}")
        return _read("GET /transactions/{id}", _transaction, body)

    async def statuses(self, ids: Sequence[TxId]) -> dict[TxId, Status | None]:
        """Status of each id (None: unknown to the node), 1000 per request."""
        answer: dict[TxId, Status | None] = {}
        for start in range(0, len(ids), STATUS_CHUNK):
            chunk = [t.hex() for t in ids[start : start + STATUS_CHUNK]]
            _, body = await self.request(
                "POST", f"{API}/transactions/statuses", json={"ids": chunk}
            )
            answer.update(_read("POST /transactions/statuses", schema.statuses_from_json, body))
        return answer

    async def address(self, address: Address) -> AddressView:
        _, body = await self.request("GET", f"{API}/addresses/{encode_address(address)}")
        return _read("GET /addresses/{address}", schema.address_from_json, body)

    async def output(self, output_id: OutputId) -> OutputView:
        _, body = await self.request("GET", f"{API}/outputs/{output_id.hex()}")
        return _read("GET /outputs/{id}", schema.output_from_json, body)

    async def faucet(self, address: Address, amount: int) -> TxId:
        """Dev networks only: the faucet pays ``amount``; returns once durable."""
        _, body = await self.request(
            "POST",
            f"{API}/faucet",
            json={"address": encode_address(address), "amount": str(amount)},
        )
        return _read("POST /faucet", schema.tx_id_from_json, body)

    async def events(
        self,
        topics: Sequence[str],
        since: int | str | None = None,
        on_open: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The event stream of ``topics`` (``/events``, a websocket), from ``since`` on
        when given (``"EPOCH:SEQ"`` of the last event seen, or a bare SEQ of the node's
        current boot): each event (or gap notice) as the node sends it, until it closes.
        ``on_open`` is called once the stream is open (a reconnecting caller resets its
        backoff there, even if no event comes).

        Raises:
            NodeUnreachable: the stream cannot be opened, or broke.
            MalformedAnswer: a message that is not a JSON object.
        """
        base = self.url.replace("http://", "ws://").replace("https://", "wss://")
        query = f"topics={','.join(topics)}" + ("" if since is None else f"&since={since}")
        try:
            # its own session: the request timeout must not end a stream that runs for days
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{base}{API}/events?{query}", heartbeat=30) as ws,
            ):
                on_open()
                async for msg in ws:
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        break
                    try:
                        event = orjson.loads(msg.data)
                    except orjson.JSONDecodeError:
                        event = None
                    if not isinstance(event, dict):
                        raise MalformedAnswer(
                            "GET /events", f"expected a JSON object, got {msg.data[:80]!r}"
                        )
                    yield event
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
