"""A real node process: the HTTP API end to end, bad input, restart, kill -9."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pow
from tangle import TxId, solve
from tangle.schema import Status
from tests.functional.framework import DEV_PARAMS, NodeProcess, http, submit, wait_until
from tests.helpers import keypair

ALICE, BOB = keypair(11), keypair(12)


def confirmed(node: NodeProcess, tx_id: TxId) -> bool:
    return node.status(tx_id) == Status.CONFIRMED


def test_payment_end_to_end(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    info = node.get("/api/v1/info").json
    assert info["dev"] is True
    assert info["transactions"] == 1
    funding = node.fund(ALICE, 1_000)
    wait_until(lambda: confirmed(node, funding), 15, "the faucet payment to confirm")

    pay = node.transfer(ALICE, BOB, 250)
    first = submit(node, pay)
    assert first.status == 201, first.raw
    assert first.json == {"id": pay.id.hex()}
    again = node.post(
        "/api/v1/transactions", raw=pay.encode(), content_type="application/octet-stream"
    )
    assert again.status == 200  # idempotent
    assert again.json == {"id": pay.id.hex()}
    wait_until(lambda: confirmed(node, pay.id), 15, "the payment to confirm")

    body = node.get(f"/api/v1/transactions/{pay.id.hex()}").json
    assert body["metadata"]["status"] == "confirmed"
    assert body["metadata"]["conflict_reason"] is None
    assert body["metadata"]["confidence"] == 1.0
    amounts = {o["address"]: o["amount"] for o in body["outputs"]}
    assert sorted(amounts.values()) == ["250", "750"]

    from tangle import encode_address

    bob = node.get(f"/api/v1/addresses/{encode_address(BOB.address)}").json
    assert bob["balance"] == {"confirmed": "250", "pending": "250"}
    out = node.get(f"/api/v1/outputs/{bob['outputs'][0]['output_id']}").json
    assert out["amount"] == "250"
    assert out["spent"] is False
    assert node.get("/api/v1/openapi.json").json["openapi"].startswith("3.")
    text = node.get("/metrics").raw.decode()
    assert "tangle_transactions" in text
    for stage in ("validate", "parents", "attach", "commit"):  # where submissions spent time
        line = f'tangle_submit_stage_seconds_count{{stage="{stage}"}} '
        counted = next(row for row in text.splitlines() if row.startswith(line))
        assert int(counted.split()[1]) >= 1, counted  # the payment above went through each


def test_bad_input_is_refused_precisely_and_changes_nothing(
    spawn: Callable[..., NodeProcess],
) -> None:
    node = spawn()
    funding = node.fund(ALICE, 1_000)
    wait_until(lambda: confirmed(node, funding), 15, "funding")
    before = node.get("/api/v1/info").json["transactions"]
    good = node.transfer(ALICE, BOB, 100)

    def refused(result, status: int, code: str, words: str = "") -> None:  # type: ignore[no-untyped-def]
        assert result.status == status, result.raw
        error = result.json["error"]
        assert error["code"] == code, error
        assert words in error["message"], error

    refused(node.post("/api/v1/transactions", raw=b"{nope"), 400, "invalid_json")
    refused(node.post("/api/v1/transactions", {"raw": 5}), 400, "invalid_field", "expected str")
    refused(node.post("/api/v1/transactions", {}), 400, "missing_field", "raw")
    refused(submit_raw(node, good.encode()[:-5]), 400, "invalid_encoding", "nonce")
    refused(submit_raw(node, good.encode() + b"\x00"), 400, "invalid_encoding", "trailing")
    forged = solve(dataclasses.replace(good, signature=BOB.sign(good.essence_hash())), DEV_PARAMS)
    refused(submit(node, forged), 422, "invalid_signature", "does not verify")
    required = DEV_PARAMS.required_difficulty(good)
    bad_nonce = next(n for n in range(10_000) if pow.work(good.pow_data(), n) < required)
    refused(
        submit(node, dataclasses.replace(good, nonce=bad_nonce)),
        422,
        "insufficient_work",
        f"expected at least {required} leading zero bits",
    )
    orphan = dataclasses.replace(good, trunk=TxId(b"\x05" * 32))
    orphan = solve(sign_again(orphan), DEV_PARAMS)
    refused(submit(node, orphan), 422, "unknown_parent", "waited 3 s")
    asked = node.post("/api/v1/transactions?parent_wait=0", {"raw": orphan.encode().hex()})
    refused(asked, 422, "unknown_parent", "waited 0 s")  # the client said not to wait
    for wait in ("4", "-1", "nan", "soon"):
        refused(
            node.post(f"/api/v1/transactions?parent_wait={wait}", {"raw": good.encode().hex()}),
            400,
            "invalid_field",
            "parent_wait: expected seconds from 0 to 3",
        )
    overspend = node.transfer(ALICE, BOB, 100, inputs=[(node.unspent(ALICE)[0][0], 5_000)])
    refused(submit(node, overspend), 422, "conflicting", "AMOUNT_MISMATCH")
    refused(node.get("/api/v1/transactions/" + "00" * 32), 404, "not_found")
    refused(node.get("/api/v1/transactions/xyz"), 400, "invalid_encoding")
    refused(node.get("/api/v1/addresses/tgl1qqqq"), 400, "invalid_address")
    refused(
        node.post("/api/v1/faucet", {"address": "tgl1x", "amount": "5"}), 400, "invalid_address"
    )
    refused(node.get("/api/v1/nothing"), 404, "not_found")
    refused(node.post("/api/v1/transactions", raw=b"0" * 200_000), 413, "too_large")
    assert node.get("/api/v1/info").json["transactions"] == before  # nothing was stored
    assert submit(node, good).status == 201  # and the node still serves


def submit_raw(node: NodeProcess, raw: bytes):  # type: ignore[no-untyped-def]
    return node.post("/api/v1/transactions", {"raw": raw.hex()})


def sign_again(tx):  # type: ignore[no-untyped-def]
    from tangle import sign

    return sign(tx, ALICE)


def test_double_spend_of_a_confirmed_output_is_refused(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    funding = node.fund(ALICE, 1_000)
    wait_until(lambda: confirmed(node, funding), 15, "funding")
    coins = node.unspent(ALICE)
    pay = node.transfer(ALICE, BOB, 100, inputs=coins)
    assert submit(node, pay).status == 201
    wait_until(lambda: confirmed(node, pay.id), 15, "the payment")
    again = node.transfer(ALICE, keypair(13), 100, inputs=coins)  # the same coins
    result = submit(node, again)
    assert result.status in (409, 422), result.raw  # 422 when the spend is in its cone
    assert result.json["error"]["code"] in ("double_spend", "conflicting")


def test_restart_keeps_everything(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    funding = node.fund(ALICE, 1_000)
    ids = [funding] + [node.fund(BOB, 10 + i) for i in range(5)]
    wait_until(lambda: all(confirmed(node, i) for i in ids), 15, "confirmations")
    before = node.get("/api/v1/info").json["transactions"]
    assert node.stop() == 0
    assert "stopped cleanly" in node.tail()
    node.start()
    assert node.get("/api/v1/info").json["transactions"] == before
    wait_until(lambda: all(confirmed(node, i) for i in ids), 15, "confirmations after restart")


def test_kill_9_under_load_loses_nothing_acknowledged(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    acknowledged: list[TxId] = []
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            try:
                tx = node.data(ALICE, f"reading {n}".encode())
                result = submit(node, tx)
            except OSError:  # includes http.client's RemoteDisconnected
                return  # the node died mid-request: not acknowledged
            if result.status == 201:
                acknowledged.append(tx.id)
            n += 1

    worker = threading.Thread(target=load)
    worker.start()
    wait_until(lambda: len(acknowledged) >= 100, 60, "100 acknowledged transactions")
    node.kill()
    stop.set()
    worker.join(10)
    node.start()
    missing = [
        t.hex() for t in acknowledged if node.get(f"/api/v1/transactions/{t.hex()}").status != 200
    ]
    assert not missing, f"{len(missing)} acknowledged transactions lost"
    assert node.get("/api/v1/info").json["transactions"] >= len(acknowledged) + 1


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.text(max_size=200).map(str.encode),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=20), max_size=3).map(
            lambda d: __import__("json").dumps(d).encode()
        ),
    )
)
def test_fuzzed_bodies_get_clear_errors(fuzz_node: NodeProcess, body: bytes) -> None:
    for path in ("/api/v1/transactions", "/api/v1/faucet"):
        result = http("POST", fuzz_node.url(path), raw=body)
        assert result.status in (400, 404, 409, 413, 422), (result.status, result.raw)
        assert result.json["error"]["code"]
    assert fuzz_node.get("/api/v1/info").status == 200


def test_an_idle_settled_node_stays_quiet(spawn: Callable[..., NodeProcess]) -> None:
    node = spawn()
    funding = node.fund(ALICE, 10)
    wait_until(lambda: confirmed(node, funding), 15, "funding")
    time.sleep(1.5)  # let the node's last liveness transactions settle
    settled = node.get("/api/v1/info").json["transactions"]
    time.sleep(3.0)  # three idle periods
    assert node.get("/api/v1/info").json["transactions"] == settled
