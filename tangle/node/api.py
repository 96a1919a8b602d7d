"""The node's HTTP API: JSON over aiohttp, errors as {"error": {"code", "message"}}.

Every error leaves one middleware with the right status: 400 for bytes or text that do
not parse, 404 for unknown ids, 409 for a spend of something already spent, 413 for an
oversize body, 422 for a well-formed transaction the rules refuse, 503 with
``Retry-After`` when storage fails or the node is overloaded (then before it reads the
body: tangle.node.load). Amounts are decimal strings of the smallest unit; ids are
lowercase hex.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tangle import __version__, schema
from tangle.address import decode_address, encode_address
from tangle.constants import HASH_SIZE, MAX_SUPPLY
from tangle.encoding import parse_hex
from tangle.errors import (
    AddressError,
    EncodingError,
    InsufficientWork,
    InvalidSignature,
    InvalidTransaction,
    ValueRuleViolation,
    WrongNetwork,
)
from tangle.node import events_ws
from tangle.node.errors import Rejected, StorageError
from tangle.node.metrics import prometheus
from tangle.node.node import PARENT_WAIT, Node
from tangle.schema import AddressView, ErrorCode, OutputView, Status
from tangle.tangle import TxStatus
from tangle.transaction import OutputId, TxId

log = logging.getLogger(__name__)
NODE = web.AppKey("node", Node)
BODY_TIMEOUT = 5.0
"""Seconds a submission's body may take to arrive (a slow sender is answered 408)."""
STORAGE_RETRY_AFTER = 1
"""Seconds a client waits after a failed commit (the node writes it again after 1 s)."""
MAX_BODY = 128 * 1024
"""Bodies up to 128 KiB: a status query of 1000 ids is 66 KB; a transaction in hex 28 KB
(and the transaction decoder enforces its own, smaller, limit)."""


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error(
    status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> web.Response:
    return json_response(schema.error_to_json(code, message, extra), status)


_INVALID_CODES: list[tuple[type[InvalidTransaction], ErrorCode]] = [
    (WrongNetwork, ErrorCode.WRONG_NETWORK),
    (InvalidSignature, ErrorCode.INVALID_SIGNATURE),
    (InsufficientWork, ErrorCode.INSUFFICIENT_WORK),
    (ValueRuleViolation, ErrorCode.INVALID_VALUE),
]


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Map every error to a JSON body and a status, in one place."""
    try:
        return await handler(request)
    except Rejected as exc:
        response = error(exc.status, exc.code, exc.message, exc.extra)
        if "retry_after_s" in exc.extra:
            response.headers["Retry-After"] = str(exc.extra["retry_after_s"])
        return response
    except AddressError as exc:
        return error(400, ErrorCode.INVALID_ADDRESS, str(exc))
    except EncodingError as exc:
        return error(400, ErrorCode.INVALID_ENCODING, str(exc))
    except InvalidTransaction as exc:
        code = next((c for kind, c in _INVALID_CODES if isinstance(exc, kind)), ErrorCode.INVALID)
        return error(422, code, str(exc))
    except StorageError as exc:
        log.error("storage failed: %s", exc)
        response = error(
            503,
            ErrorCode.STORAGE_UNAVAILABLE,
            "the node cannot write to its database",
            {"retry_after_s": STORAGE_RETRY_AFTER},
        )
        response.headers["Retry-After"] = str(STORAGE_RETRY_AFTER)
        return response
    except web.HTTPRequestEntityTooLarge:
        return error(413, ErrorCode.TOO_LARGE, f"request bodies are at most {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise


def _tx_id(request: web.Request) -> TxId:
    return TxId(parse_hex("transaction id", request.match_info["id"], HASH_SIZE))


async def _json(request: web.Request) -> dict[str, Any]:
    return _json_body(await request.read())


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(ErrorCode.INVALID_JSON, f"the body is not JSON: {exc}", 400) from None
    if not isinstance(body, dict):
        raise Rejected(
            ErrorCode.INVALID_JSON, f"expected a JSON object, got {type(body).__name__}", 400
        )
    return body


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    if name not in body:
        raise Rejected(ErrorCode.MISSING_FIELD, f"{name}: required", 400)
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Rejected(
            ErrorCode.INVALID_FIELD,
            f"{name}: expected {kind.__name__}, got {type(value).__name__}",
            400,
        )
    return value


AMOUNT_DIGITS = len(str(MAX_SUPPLY))
"""An amount has at most 19 digits: the supply (10**18) has that many."""


def _amount(value: Any) -> int:
    """A JSON number or decimal string of ASCII digits (no sign, space or '²'), at most
    the supply; refused by its length before it is converted."""
    if value is None:
        raise Rejected(
            ErrorCode.INVALID_FIELD,
            "amount: missing; expected a decimal string of ASCII digits",
            400,
        )
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()):
        if isinstance(value, str):
            shown = repr(value[:20] + "..." if len(value) > 20 else value)
        else:  # a number, list or object, as long as the body: at most 40 characters
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
        raise Rejected(
            ErrorCode.INVALID_FIELD,
            f"amount: expected a decimal string of ASCII digits, got {shown}",
            400,
        )
    if len(text) > AMOUNT_DIGITS:
        raise Rejected(
            ErrorCode.INVALID_FIELD,
            f"amount: expected at most {AMOUNT_DIGITS} digits, got {len(text)}",
            400,
        )
    amount = int(text)
    if amount > MAX_SUPPLY:
        raise Rejected(
            ErrorCode.INVALID_FIELD,
            f"amount: expected at most {MAX_SUPPLY} (the supply), got {amount}",
            400,
        )
    return amount


# -- handlers ------------------------------------------------------------------------------


async def info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    counts = node.counts()
    snapshot = node.snapshot
    return json_response(
        {
            "name": "tangle",
            "version": __version__,
            "network_id": f"{node.params.network_id:#x}",
            "dev": node.config.dev,
            "transactions": counts["transactions"],
            "tips": counts["tips"],
            "confirmed": counts["confirmed"],
            "pending": counts["pending"],
            "conflicting": counts["conflicting"],
            "orphaned": counts["orphaned"],
            "pow": {
                "base_difficulty": node.params.base_difficulty,
                "size_unit_bytes": 512,
                "rule": "PROTOCOL §6",
            },
            "peers": list(node.config.peers),
            "uptime_s": round(node.clock() - node.started, 3),
            "throughput_tps": round(node.throughput(), 3),
            "faucet": encode_address(node.faucet.address) if node.config.dev else None,
            "snapshot": {
                "id": node.snapshot_id.hex(),
                "pruned": snapshot.pruned,
                "entry_points": len(snapshot.entry_points),
                "outputs": len(snapshot.outputs),
            },
        }
    )


async def snapshot(request: web.Request) -> web.Response:
    """The snapshot this node's tangle starts from (the genesis's, before any pruning)."""
    node = request.app[NODE]
    current = node.snapshot
    return web.Response(
        body=current.encode(),
        content_type="application/octet-stream",
        headers={"X-Snapshot-Id": current.id.hex(), "X-Snapshot-Pruned": str(current.pruned)},
    )


MAX_APPROVE = 16


async def tips(request: web.Request) -> web.Response:
    """?approve=id,id: tips that see those transactions (a wallet spending pending coins)."""
    node = request.app[NODE]
    wanted = [t for t in request.query.get("approve", "").split(",") if t]
    if len(wanted) > MAX_APPROVE:
        raise Rejected(
            ErrorCode.TOO_MANY,
            f"approve: expected at most {MAX_APPROVE} ids, got {len(wanted)}",
            400,
        )
    ids = [TxId(parse_hex("approve", text, HASH_SIZE)) for text in wanted]
    trunk, branch = node.issuer.tips_approving(ids)
    return json_response(schema.tips_to_json(trunk, branch))


async def submit(request: web.Request) -> web.Response:
    """?parent_wait=S: wait at most S seconds (0..3, default 3) for parents this node has
    not heard of yet; a device whose tips came from this very node can say 0."""
    node = request.app[NODE]
    node.refuse_if_behind()  # a 503 before reading, decoding or verifying anything
    parent_wait = _parent_wait(request)
    try:
        async with asyncio.timeout(BODY_TIMEOUT):  # a slow sender holds nothing for long
            body = await request.read()
    except TimeoutError:
        raise Rejected(
            ErrorCode.REQUEST_TIMEOUT,
            f"body: expected all of it within {BODY_TIMEOUT:g} s, got part of it or none",
            408,
        ) from None
    with node.submission_slot():
        if request.content_type == "application/octet-stream":
            raw = body
        else:
            raw = parse_hex("raw", _field(_json_body(body), "raw", str))
        result = await node.submit(raw, parent_wait=parent_wait)
    return json_response(schema.tx_id_to_json(result.tx_id), 201 if result.created else 200)


def _parent_wait(request: web.Request) -> float:
    text = request.query.get("parent_wait")
    if text is None:
        return PARENT_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= PARENT_WAIT:  # NaN fails too
        raise Rejected(
            ErrorCode.INVALID_FIELD,
            f"parent_wait: expected seconds from 0 to {PARENT_WAIT:g}, got {text[:20]!r}",
            400,
        )
    return seconds


async def transaction(request: web.Request) -> web.Response:
    node = request.app[NODE]
    tx = node.get(_tx_id(request))
    body = schema.transaction_to_json(tx)
    body["metadata"] = schema.metadata_to_json(node.metadata(tx.id))
    return json_response(body)


MAX_STATUS_IDS = 1000


async def statuses(request: web.Request) -> web.Response:
    """POST {"ids": [hex, ...]} (at most 1000): {hex: status or null if unknown}."""
    node = request.app[NODE]
    ids = _field(await _json(request), "ids", list)
    if len(ids) > MAX_STATUS_IDS:
        raise Rejected(
            ErrorCode.TOO_MANY, f"ids: expected at most {MAX_STATUS_IDS}, got {len(ids)}", 400
        )
    answer: dict[str, TxStatus | None] = {}
    for text in ids:
        if not isinstance(text, str):
            raise Rejected(ErrorCode.INVALID_FIELD, f"ids: expected hex strings, got {text!r}", 400)
        answer[text] = node.status(TxId(parse_hex("transaction id", text, HASH_SIZE)))
    return json_response(schema.statuses_to_json(answer))


def _output_view(node: Node, oid: OutputId) -> OutputView:
    output = node.output(oid)
    if output is None:
        raise Rejected(ErrorCode.NOT_FOUND, f"output {oid.hex()} is unknown", 404)
    spent_by = node.spent(oid, confirmed_only=False)
    return OutputView(
        output_id=oid,
        address=output.address,
        amount=output.amount,
        status=Status.of(node.output_status(oid)),
        spent=spent_by is not None,
        spent_by=spent_by,
        spent_confirmed=node.spent(oid, confirmed_only=True) is not None,
    )


async def address(request: web.Request) -> web.Response:
    node = request.app[NODE]
    addr = decode_address(request.match_info["address"])
    confirmed, pending = node.balances(addr)
    outputs = tuple(_output_view(node, oid) for oid, _ in node.outputs_of(addr))
    return json_response(AddressView(addr, confirmed, pending, outputs).to_json())


async def output(request: web.Request) -> web.Response:
    node = request.app[NODE]
    oid = OutputId.from_hex(request.match_info["id"])
    return json_response(_output_view(node, oid).to_json())


async def faucet(request: web.Request) -> web.Response:
    node = request.app[NODE]
    if not node.config.dev:
        raise Rejected(ErrorCode.NOT_AVAILABLE, "the faucet exists only on --dev networks", 404)
    body = await _json(request)
    addr = decode_address(_field(body, "address", str))
    tx_id = await node.issuer.pay_from_faucet(addr, _amount(body.get("amount")))
    return json_response(schema.tx_id_to_json(tx_id), 201)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=prometheus(request.app[NODE]), content_type="text/plain")


def _openapi() -> dict[str, Any]:
    def op(summary: str, *codes: int) -> dict[str, Any]:
        return {"summary": summary, "responses": {str(c): {"description": ""} for c in codes}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "tangle node API", "version": __version__},
        "paths": {
            "/api/v1/info": {"get": op("Node and network figures", 200)},
            "/api/v1/tips": {
                "get": op(
                    "Trunk and branch chosen by tip selection; ?approve=id,id makes the "
                    "pair see those transactions (a wallet spending pending outputs)",
                    200,
                    400,
                    404,
                    409,
                )
            },
            "/api/v1/transactions": {
                "post": op(
                    "Submit a transaction: {'raw': hex} or application/octet-stream; "
                    "201 once durable, 200 if known; 503 overloaded (with Retry-After) "
                    "before the body is read when the node is behind",
                    200,
                    201,
                    400,
                    409,
                    413,
                    422,
                    503,
                )
            },
            "/api/v1/transactions/{id}": {
                "get": op("A transaction and its metadata", 200, 400, 404)
            },
            "/api/v1/addresses/{address}": {"get": op("Balances and outputs", 200, 400)},
            "/api/v1/outputs/{id}": {"get": op("One output", 200, 400, 404)},
            "/api/v1/snapshot": {
                "get": op(
                    "The binary snapshot this node starts from (PROTOCOL §8.5), for a new "
                    "node's --snapshot-from; X-Snapshot-Id names it",
                    200,
                )
            },
            "/api/v1/faucet": {
                "post": op(
                    "Dev networks: {'address', 'amount'}; amount: ASCII decimal digits (at "
                    "most 19), 1 to the supply",
                    201,
                    400,
                    404,
                    409,
                )
            },
            "/api/v1/events": {
                "get": op(
                    "Websocket of numbered events, each with the node's epoch (a boot id); "
                    "?topics=transactions,confirmations,conflicts,address:<tgl1...> (at "
                    "most 256)&since=EPOCH:SEQ (or SEQ: this boot's) replays what was "
                    "missed, a gap notice first if some is lost (pruned, restarted); frames "
                    "of at most 32 KiB; 503 with Retry-After past 8 streams a client",
                    101,
                    400,
                    503,
                )
            },
            "/metrics": {"get": op("Prometheus text format", 200)},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(_openapi())


def make_app(node: Node) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app[NODE] = node
    app.router.add_get("/api/v1/info", info)
    app.router.add_get("/api/v1/tips", tips)
    app.router.add_post("/api/v1/transactions", submit)
    app.router.add_post("/api/v1/transactions/statuses", statuses)
    app.router.add_get("/api/v1/transactions/{id}", transaction)
    app.router.add_get("/api/v1/addresses/{address}", address)
    app.router.add_get("/api/v1/outputs/{id}", output)
    app.router.add_post("/api/v1/faucet", faucet)
    app.router.add_get("/api/v1/snapshot", snapshot)
    app.router.add_get("/api/v1/openapi.json", openapi)
    events_ws.install(app, node.events)
    app.router.add_get("/metrics", metrics)
    return app
