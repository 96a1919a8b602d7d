"""An overloaded node sheds load early (503 + Retry-After) and loses nothing it acknowledged."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tangle import Transaction, build
from tests.functional.framework import DEV_PARAMS, HttpResult, NodeProcess, submit
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

    node.kill()  # kill -9: nothing acknowledged may be lost
    node.start()
    missing = [
        tx.id.hex()
        for tx in accepted
        if node.get(f"/api/v1/transactions/{tx.id.hex()}").status != 200
    ]
    assert not missing, f"{len(missing)} of {len(accepted)} acknowledged transactions lost"
    # and the node takes submissions again once it is not behind
    later = next(tx for tx, _ in shed)
    assert submit(node, later).status == 201
