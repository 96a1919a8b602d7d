"""Real node processes on 127.0.0.1 for functional tests (Bitcoin Core's framework style).

``NodeProcess`` starts ``python -m tangle.node node`` on port 0 with the node package's
own launcher (``tangle.node.devnet.LocalNode``: the real address is read back from
``DATA_DIR/node.json``, the log kept in ``DATA_DIR/node.log``); ``wait_until`` polls a predicate
with a deadline. Every process is stopped by the fixture, whatever the test did; on a
failure the fixture prints the tail of each node's log.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pow
from tangle import (
    Keypair,
    NetworkParams,
    OutputId,
    Transaction,
    TxId,
    build,
    decode_address,
    schema,
)
from tangle.builder import payments_with_change
from tangle.node.devnet import LocalNode
from tangle.node.errors import DevnetError
from tangle.node.genesis import DEV_BASE_DIFFICULTY, DEV_NETWORK_ID

DEV_PARAMS = NetworkParams(network_id=DEV_NETWORK_ID, base_difficulty=DEV_BASE_DIFFICULTY)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


class HttpResult:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.raw = body
        self.headers = headers or {}

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


def http(
    method: str,
    url: str,
    body: Any = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 30.0,
) -> HttpResult:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return HttpResult(exc.code, exc.read(), dict(exc.headers))


class NodeProcess(LocalNode):
    """A node process on port 0 (the one launcher, :class:`tangle.node.devnet.LocalNode`),
    with the HTTP helpers tests use; a failure to start or stop fails the test."""

    def __init__(self, data_dir: Path, *extra: str, dev: bool = True) -> None:
        super().__init__(data_dir, (*(["--dev"] if dev else []), "--api-port", "0", *extra))
        self.extra = extra
        self.dev = dev

    def start(self, timeout: float = 30.0) -> NodeProcess:
        try:
            super().start(timeout)
        except DevnetError as exc:
            raise AssertionError(str(exc)) from None
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as a service manager would; returns the exit code."""
        try:
            return super().stop(timeout)
        except DevnetError as exc:
            raise AssertionError(str(exc)) from None

    def tail(self, lines: int = 30) -> str:
        return super().tail(lines)

    def url(self, path: str) -> str:
        return self.api + path

    def get(self, path: str) -> HttpResult:
        return http("GET", self.url(path))

    def post(self, path: str, body: Any = None, **kw: Any) -> HttpResult:
        return http("POST", self.url(path), body, **kw)

    # -- helpers tests use ------------------------------------------------------------------

    def tips(self) -> tuple[TxId, TxId]:
        return schema.tips_from_json(self.get("/api/v1/tips").json)

    def status(self, tx_id: TxId) -> schema.Status | None:
        result = self.get(f"/api/v1/transactions/{tx_id.hex()}")
        if result.status != 200:
            return None
        return schema.transaction_view_from_json(result.json).status

    def unspent(self, key: Keypair) -> list[tuple[OutputId, int]]:
        from tangle import encode_address

        body = self.get(f"/api/v1/addresses/{encode_address(key.address)}").json
        view = schema.address_from_json(body)
        return [(o.output_id, o.amount) for o in view.outputs if o.spendable]

    def fund(self, key: Keypair, amount: int) -> TxId:
        from tangle import encode_address

        result = self.post(
            "/api/v1/faucet", {"address": encode_address(key.address), "amount": str(amount)}
        )
        assert result.status == 201, result.raw
        return schema.tx_id_from_json(result.json)

    def transfer(
        self,
        key: Keypair,
        to: Keypair,
        amount: int,
        inputs: list[tuple[OutputId, int]] | None = None,
    ) -> Transaction:
        """Build (not submit) a payment from ``key``'s unspent outputs on fresh tips."""
        coins = inputs if inputs is not None else self.unspent(key)
        total = sum(a for _, a in coins)
        payments = payments_with_change(to.address, amount, key.address, total)
        trunk, branch = self.tips()
        return build(
            key,
            DEV_PARAMS,
            trunk=trunk,
            branch=branch,
            timestamp=int(time.time() * 1000),
            inputs=[o for o, _ in coins],
            payments=payments,
        )

    def data(self, key: Keypair, payload: bytes) -> Transaction:
        trunk, branch = self.tips()
        return build(
            key,
            DEV_PARAMS,
            trunk=trunk,
            branch=branch,
            timestamp=int(time.time() * 1000),
            payload=payload,
        )


def submit(node: NodeProcess, tx: Transaction) -> HttpResult:
    return node.post("/api/v1/transactions", {"raw": tx.encode().hex()})


__all__ = ["DEV_PARAMS", "NodeProcess", "decode_address", "http", "pow", "submit", "wait_until"]
