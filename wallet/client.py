"""An asyncio client of the node's HTTP API (docs/NODE.md), with plain errors.

Every call raises :class:`~wallet.errors.NodeUnreachable` when there is no answer and
:class:`~wallet.errors.NodeError` (status, code, message, extra fields) when the node
answers with an error object. Amounts come back as ints; ids as :class:`TxId`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from tangle.address import Address, decode_address, encode_address
from tangle.transaction import OutputId, Transaction, TxId
from tangle.validation import NetworkParams
from wallet.errors import NodeError, NodeUnreachable

DEFAULT_NODE = "http://127.0.0.1:14265"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class OutputInfo:
    output_id: OutputId
    address: Address
    amount: int
    status: str
    """Status of the transaction that created it: pending, confirmed, conflicting, orphaned."""
    spent: bool
    """Spent by a pending or confirmed transaction."""
    spent_by: TxId | None
    spent_confirmed: bool

    @property
    def spendable(self) -> bool:
        """Live (pending or confirmed) and not spent by anything live."""
        return self.status in ("pending", "confirmed") and not self.spent


@dataclass(frozen=True, slots=True)
class AddressInfo:
    address: Address
    confirmed: int
    pending: int
    """Balance counting pending payments in and out too."""
    outputs: tuple[OutputInfo, ...]


def _output(body: dict[str, Any]) -> OutputInfo:
    spent_by = body.get("spent_by")
    return OutputInfo(
        output_id=OutputId.from_hex(body["output_id"]),
        address=decode_address(body["address"]),
        amount=int(body["amount"]),
        status=body["status"],
        spent=bool(body["spent"]),
        spent_by=TxId(bytes.fromhex(spent_by)) if spent_by else None,
        spent_confirmed=bool(body.get("spent_confirmed", False)),
    )


class NodeClient:
    """One node's API. Use ``async with NodeClient(url) as node:`` or call :meth:`close`."""

    def __init__(self, url: str = DEFAULT_NODE, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
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

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body) for a 2xx answer; errors raise."""
        url = f"{self.url}{path}"
        data = None if json is None else orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(
                method, url, data=data, headers=headers, params=params
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError) as exc:
            raise NodeUnreachable(self.url, str(exc) or type(exc).__name__) from None
        except TimeoutError:
            raise NodeUnreachable(self.url, "no answer within the timeout") from None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise NodeError(
                status, "not_json", f"{method} {path}: not JSON: {raw[:80]!r}", {}
            ) from None
        if status >= 400:
            err = body.get("error", {}) if isinstance(body, dict) else {}
            extra = {k: v for k, v in err.items() if k not in ("code", "message")}
            raise NodeError(
                status, str(err.get("code", "http_error")), str(err.get("message", raw)), extra
            )
        return status, body

    # -- the API ---------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        _, body = await self.request("GET", "/api/v1/info")
        assert isinstance(body, dict)
        return body

    async def params(self) -> NetworkParams:
        """The network's id and base difficulty (asked once, then kept)."""
        if self._params is None:
            info = await self.info()
            self._params = NetworkParams(
                network_id=int(info["network_id"], 16),
                base_difficulty=int(info["pow"]["base_difficulty"]),
            )
        return self._params

    async def tips(self, approve: Iterable[TxId] = ()) -> tuple[TxId, TxId]:
        """Trunk and branch; with ``approve``, a pair that sees those transactions."""
        wanted = ",".join(dict.fromkeys(t.hex() for t in approve))
        _, body = await self.request(
            "GET", "/api/v1/tips", params={"approve": wanted} if wanted else None
        )
        return TxId(bytes.fromhex(body["trunk"])), TxId(bytes.fromhex(body["branch"]))

    async def submit(self, tx: Transaction) -> bool:
        """Submit; True when the node stored it now (201), False if it already had it."""
        status, _ = await self.request(
            "POST", "/api/v1/transactions", json={"raw": tx.encode().hex()}
        )
        return status == 201

    async def transaction(self, tx_id: TxId) -> dict[str, Any]:
        """The decoded transaction with its ``metadata`` (status, confidence, advice)."""
        _, body = await self.request("GET", f"/api/v1/transactions/{tx_id.hex()}")
        assert isinstance(body, dict)
        return body

    async def statuses(self, ids: Sequence[TxId]) -> dict[TxId, str | None]:
        """Status of each id (None: unknown to the node), 1000 per request."""
        answer: dict[TxId, str | None] = {}
        for start in range(0, len(ids), 1000):
            chunk = [t.hex() for t in ids[start : start + 1000]]
            _, body = await self.request(
                "POST", "/api/v1/transactions/statuses", json={"ids": chunk}
            )
            answer.update({TxId(bytes.fromhex(k)): v for k, v in body.items()})
        return answer

    async def address(self, address: Address) -> AddressInfo:
        _, body = await self.request("GET", f"/api/v1/addresses/{encode_address(address)}")
        return AddressInfo(
            address=address,
            confirmed=int(body["balance"]["confirmed"]),
            pending=int(body["balance"]["pending"]),
            outputs=tuple(_output(o) for o in body["outputs"]),
        )

    async def output(self, output_id: OutputId) -> OutputInfo:
        _, body = await self.request("GET", f"/api/v1/outputs/{output_id.hex()}")
        return _output(body)

    async def faucet(self, address: Address, amount: int) -> TxId:
        """Dev networks only: the faucet pays ``amount``; returns once durable."""
        _, body = await self.request(
            "POST",
            "/api/v1/faucet",
            json={"address": encode_address(address), "amount": str(amount)},
        )
        return TxId(bytes.fromhex(body["id"]))
