"""An overloaded node sheds load early (503 + Retry-After) and loses nothing it acknowledged."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tangle import Transaction, build
from tests.functional.framework import DEV_PARAMS, HttpResult, NodeProcess, submit, wait_until
from tests.helpers import keypair

SUBMISSIONS = 48


def test_an_overloaded_node_answers_503_with_retry_after_and_loses_nothing_acknowledged(
    spawn: Callable[..., NodeProcess],
) -> None:
    node = spawn("node0", "--max-in-flight", "1")
    trunk, branch = node.tips()
    txs = [  # independent data payments by distinct devices, all on the same tips
        build(
            keypair(1000 + i),
            DEV_PARAMS,
            trunk=trunk,
            branch=branch,
            timestamp=int(time.time() * 1000),
            payload=f"reading {i}".encode(),
        )
        for i in range(SUBMISSIONS)
    ]

    def send(tx: Transaction) -> tuple[Transaction, HttpResult]:
        return tx, submit(node, tx)

    with ThreadPoolExecutor(SUBMISSIONS) as pool:
        results = list(pool.map(send, txs))  # all at once: more than one in flight
    accepted = [tx for tx, r in results if r.status == 201]
    shed = [(tx, r) for tx, r in results if r.status == 503]
    assert accepted, "some submissions are admitted"
    assert shed, "some are refused while one is in flight"
    assert len(accepted) + len(shed) == SUBMISSIONS, [r.status for _, r in results]
    for tx, result in shed:
        error = result.json["error"]
        assert error["code"] == "overloaded"
        assert "in flight: expected fewer than 1, got 1" in error["message"]
        assert result.headers["Retry-After"] == str(error["retry_after_s"])
        assert int(result.headers["Retry-After"]) >= 1
        # refused before it was read: the node does not hold it
        assert node.get(f"/api/v1/transactions/{tx.id.hex()}").status == 404

    # every slot is given back, and the node takes submissions again once it is not behind
    wait_until(lambda: "tangle_in_flight 0\n" in node.get("/metrics").raw.decode(), 10, "slots")
    first_shed = shed[0][0]
    assert submit(node, first_shed).status == 201
    accepted.append(first_shed)

    node.kill()  # kill -9: nothing acknowledged may be lost
    node.start()
    missing = [
        tx.id.hex()
        for tx in accepted
        if node.get(f"/api/v1/transactions/{tx.id.hex()}").status != 200
    ]
    assert not missing, f"{len(missing)} of {len(accepted)} acknowledged transactions lost"


def test_a_slow_sender_holds_no_slot_and_is_answered_408(
    spawn: Callable[..., NodeProcess],
) -> None:
    """A client that sends its headers and then stalls its body must not keep honest
    devices out (the slot is taken once the body is in), and gets 408 after 5 s."""
    node = spawn("node0", "--max-in-flight", "1")
    host, port = node.api.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)), timeout=15)
    try:
        slow.sendall(
            b"POST /api/v1/transactions HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"raw": "'
        )
        time.sleep(0.3)  # the node is now reading the slow body
        honest = node.data(keypair(2000), b"while someone stalls")
        assert submit(node, honest).status == 201
        began = time.monotonic()
        answer = slow.recv(4096).decode(errors="replace")
        waited = time.monotonic() - began
    finally:
        slow.close()
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert "request_timeout" in answer
    assert waited < 10
