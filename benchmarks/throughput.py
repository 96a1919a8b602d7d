"""Throughput and confirmation latency of a devnet of real node processes on loopback.

    python -m benchmarks.throughput [--nodes 3] [--duration 30] [--rate 1000] [--json]

The load generator builds, signs and solves every payment *before* the timed window,
with one device per unit of rate, so each device pays about once a second (faster
payers meet the nodes' adaptive difficulty, PROTOCOL §6.5),
as devices that prepare payments offline would (said in the output too): funding
transaction from dev faucet 0 to ``devices`` devices, then payments where each device
spends its previous change, approving two recent transactions (or its own previous
payment when that is not yet in their past cone). In the window it submits them at
``rate`` per second, each device through one node, and polls the first node for
confirmations. A payment refused for an unknown parent (it approves one that has not yet
reached this node by gossip) is submitted again after 0.5 s, up to 6 times.

Measured in the same run: the Ed25519 verification ceiling of one core; the ingest
rate of one fresh node fed the same payments over gossip (validation, attach and
SQLite commit all included); and, unless ``--skip-quiet``, the latency of single
payments one every 10 s on an otherwise idle network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tangle import Keypair, OutputId, Tangle, Transaction, TxId, build, encode_address
from tangle.node import wire
from tangle.node.devnet import free_base_port, start_devnet
from tangle.node.genesis import DEV_BASE_DIFFICULTY, DEV_NETWORK_ID, dev_faucet_key, dev_genesis
from tangle.node.wire import Kind
from tangle.retry import RETRY_PATIENCE, retry_wait
from tangle.signing import verify_signature
from tangle.validation import NetworkParams

PARAMS = NetworkParams(network_id=DEV_NETWORK_ID, base_difficulty=DEV_BASE_DIFFICULTY)
RETRIES = 6
"""A payment refused for an unknown parent is submitted again after 0.5 s, up to this
many times (a prebuilt payment cannot pick fresh tips; a device would)."""


def verify_ceiling(seconds: float = 1.0) -> float:
    key = Keypair(bytes(32))
    message = b"m" * 32
    signature = key.sign(message)
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        for _ in range(500):
            verify_signature(key.public_key, message, signature)
        count += 500
    return count / (time.perf_counter() - began)


def prebuild(
    count: int, devices: int, seed: int
) -> tuple[list[Transaction], list[tuple[int, Transaction]]]:
    """Funding transactions (a chain from dev faucet 0, at most 120 devices each) and
    ``count`` payments (device index, transaction)."""
    rng = random.Random(seed)
    genesis = dev_genesis()
    faucet = dev_faucet_key(DEV_NETWORK_ID, 0)
    keys = [Keypair(rng.getrandbits(256).to_bytes(32, "big")) for _ in range(devices)]
    source = next(
        OutputId(genesis.id, i)
        for i, o in enumerate(genesis.outputs)
        if o.address == faucet.address
    )
    grant = 10**9
    left = genesis.outputs[source.index].amount
    tangle = Tangle(genesis, PARAMS)
    fundings: list[Transaction] = []
    coin: list[tuple[OutputId, int]] = []
    parent = genesis.id
    for start in range(0, devices, 120):
        group = keys[start : start + 120]
        payments = {k.address: grant for k in group}
        left -= grant * len(group)
        payments[faucet.address] = left
        funding = build(
            faucet,
            PARAMS,
            trunk=parent,
            branch=parent,
            timestamp=start,
            inputs=[source],
            payments=payments,
        )
        tangle.attach_validated(funding)
        for key in group:
            index = next(i for i, o in enumerate(funding.outputs) if o.address == key.address)
            coin.append((OutputId(funding.id, index), grant))
        change = next(i for i, o in enumerate(funding.outputs) if o.address == faucet.address)
        source, parent = OutputId(funding.id, change), funding.id
        fundings.append(funding)
    last: list[TxId] = [fundings[d // 120].id for d in range(devices)]
    recent: list[TxId] = [fundings[-1].id]
    built: list[tuple[int, Transaction]] = []
    for i in range(count):
        d = i % devices
        key = keys[d]
        oid, value = coin[d]
        payee = keys[(d + 1 + rng.randrange(devices - 1)) % devices]
        # Two recent tips, as an issuer asking a node for tips gets; the device's own
        # previous payment (its change) is almost always in their cone already.
        window = recent[-16:]
        trunk, branch = rng.sample(window, 2) if len(window) > 1 else (window[0], window[0])
        if not (
            tangle.dag.in_past_cone(last[d], trunk) or tangle.dag.in_past_cone(last[d], branch)
        ):
            trunk = last[d]
        tx = build(
            key,
            PARAMS,
            trunk=trunk,
            branch=branch,
            timestamp=i,
            inputs=[oid],
            payments={payee.address: 1, key.address: value - 1},
        )
        result = tangle.attach_validated(tx)
        assert result.attached, result
        assert tangle.is_consistent(tx.id), tangle.verdict(tx.id)
        change = next(j for j, o in enumerate(tx.outputs) if o.address == key.address)
        coin[d] = (OutputId(tx.id, change), value - 1)
        last[d] = tx.id
        recent.append(tx.id)
        if len(recent) > 64:
            recent.pop(0)
        built.append((d, tx))
    return fundings, built


async def statuses(
    session: aiohttp.ClientSession, api: str, ids: list[TxId]
) -> dict[TxId, str | None]:
    answer: dict[TxId, str | None] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        async with session.post(
            f"{api}/api/v1/transactions/statuses", json={"ids": [t.hex() for t in chunk]}
        ) as response:
            body = await response.json()
            if response.status != 200:  # a silent failure here once hid every confirmation
                raise RuntimeError(f"status query refused: {response.status} {body}")
        for t in chunk:
            answer[t] = body.get(t.hex())
    return answer


async def submit(
    session: aiohttp.ClientSession, api: str, tx: Transaction
) -> tuple[int, str, str | None]:
    """(HTTP status, error code or "", the ``Retry-After`` header or None)."""
    async with session.post(
        f"{api}/api/v1/transactions",
        data=tx.encode(),
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        body = await response.json()
        code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
        return response.status, code, response.headers.get("Retry-After")


JITTER = random.Random(11)


async def load_phase(
    apis: list[str],
    fundings: list[Transaction],
    txs: list[tuple[int, Transaction]],
    rate: float,
    duration: float,
    grace: float,
) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=1024)
    ) as session:
        for funding in fundings:
            assert (await submit(session, apis[0], funding))[0] in (200, 201)
        last = fundings[-1].id
        while (await statuses(session, apis[0], [last]))[last] != "confirmed":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        acked: dict[TxId, float] = {}
        confirmed: dict[TxId, float] = {}
        refused: dict[str, int] = {}
        deferred = {"answers": 0, "seconds": 0.0}
        """503 overloaded answers honoured by waiting, and the time spent waiting."""
        sem = asyncio.Semaphore(1000)
        began = time.monotonic()
        window_end = began + duration

        async def send(device: int, tx: Transaction) -> None:
            attempt, patience = 0, time.monotonic() + RETRY_PATIENCE
            while True:
                async with sem:
                    status, code, later = await submit(session, apis[device % len(apis)], tx)
                wait = retry_wait(status, code, later, JITTER, idempotent=True)
                if wait is not None and time.monotonic() + wait <= patience:
                    deferred["answers"] += 1  # overloaded: come back as asked, with jitter
                    deferred["seconds"] += wait
                    await asyncio.sleep(wait)
                    continue
                if code != "unknown_parent" or attempt == RETRIES:
                    break
                attempt += 1
                await asyncio.sleep(0.5)  # as a device would: its parent is on the way
            if status in (200, 201):
                acked[tx.id] = time.monotonic()
            else:
                key = f"{status} {code}"
                refused[key] = refused.get(key, 0) + 1

        async def poll() -> None:
            while True:
                await asyncio.sleep(0.2)
                waiting = [t for t in acked if t not in confirmed]
                if not waiting:
                    continue
                now = time.monotonic()
                for t, status in (await statuses(session, apis[0], waiting)).items():
                    if status == "confirmed":
                        confirmed[t] = now

        poller = asyncio.create_task(poll())
        tasks = []
        for i, (device, tx) in enumerate(txs):
            due = began + i / rate
            if due >= window_end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(device, tx)))
        await asyncio.gather(*tasks)
        submitted_by = time.monotonic()
        while time.monotonic() < submitted_by + grace and len(confirmed) < len(acked):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        poller.cancel()
    window = max(duration, submitted_by - began)
    latencies = sorted((confirmed[t] - acked[t]) * 1000 for t in confirmed)
    in_time = sum(1 for t in confirmed if confirmed[t] <= window_end + grace)

    def pct(q: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)
            if latencies
            else float("nan")
        )

    return {
        "attempted": len(tasks),
        "submitted_tps": round(len(acked) / window, 1),
        "confirmed_tps": round(in_time / window, 1),
        "confirmation_rate": round(len(confirmed) / max(1, len(acked)), 4),
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
        "refused": refused,
        "deferred": {"answers": deferred["answers"], "seconds": round(deferred["seconds"], 1)},
        "submission_window_s": round(submitted_by - began, 2),
    }


async def quiet_phase(api: str, count: int, gap: float) -> dict[str, Any]:
    """One payment every ``gap`` seconds from a fresh device, each waited for: the
    latency on an otherwise idle network (built now, against the node's tips)."""
    key = Keypair(random.Random(99).getrandbits(256).to_bytes(32, "big"))
    other = Keypair(bytes(31) + b"\x01")
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{api}/api/v1/faucet",
            json={"address": encode_address(key.address), "amount": "1000000"},
        ) as response:
            funded = TxId(bytes.fromhex((await response.json())["id"]))
        while (await statuses(session, api, [funded]))[funded] != "confirmed":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        coin, value, last = OutputId(funded, 0), 1_000_000, funded
        async with session.get(f"{api}/api/v1/outputs/{coin.hex()}") as response:
            if (await response.json())["address"] != encode_address(key.address):
                coin = OutputId(funded, 1)
        for _ in range(count):
            for attempt in range(2):
                async with session.get(f"{api}/api/v1/tips") as response:
                    tips = await response.json()
                trunk = last if attempt else TxId(bytes.fromhex(tips["trunk"]))
                tx = build(
                    key,
                    PARAMS,
                    trunk=trunk,
                    branch=TxId(bytes.fromhex(tips["branch"])),
                    timestamp=int(time.time() * 1000),
                    inputs=[coin],
                    payments={other.address: 1, key.address: value - 1},
                )
                sent = time.monotonic()
                status, code, _ = await submit(session, api, tx)
                if status in (200, 201):
                    break
            if status not in (200, 201):
                raise RuntimeError(f"quiet payment refused: {status} {code}")
            while (await statuses(session, api, [tx.id]))[tx.id] != "confirmed":
                if time.monotonic() - sent > 30:
                    break
                await asyncio.sleep(0.05)
            latencies.append((time.monotonic() - sent) * 1000)
            change = next(i for i, o in enumerate(tx.outputs) if o.address == key.address)
            coin, value, last = OutputId(tx.id, change), value - 1, tx.id
            await asyncio.sleep(max(0.0, gap - (time.monotonic() - sent)))
    latencies.sort()
    return {
        "payments": len(latencies),
        "gap_s": gap,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "max": round(latencies[-1], 1),
        },
    }


async def ingest_phase(
    api: str, fundings: list[Transaction], txs: list[tuple[int, Transaction]]
) -> float:
    """Feed a fresh node every payment over gossip; transactions per second until the
    last one is attached and committed."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{api}/gossip", max_msg_size=wire.MAX_FRAME)
        await ws.send_bytes(wire.hello(DEV_NETWORK_ID, b"\x42" * 32, ""))
        began = time.monotonic()
        for funding in fundings:
            await ws.send_bytes(wire.encode(Kind.TX, funding.encode()))
        for _, tx in txs:
            await ws.send_bytes(wire.encode(Kind.TX, tx.encode()))
        target = len(txs) + len(fundings)
        while True:
            async with session.get(f"{api}/metrics") as response:
                text = await response.text()
            rows = next(
                int(line.split()[1])
                for line in text.splitlines()
                if line.startswith("tangle_storage_rows_total")
            )
            if rows >= target:
                break
            if time.monotonic() - began > 300:
                raise RuntimeError(f"ingest stalled at {rows} of {target}")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - began
        await ws.close()
    return target / elapsed


def run(
    nodes: int, duration: float, rate: float, devices: int, skip_quiet: bool, ingest_count: int
) -> dict[str, Any]:
    ceiling = verify_ceiling()
    count = int(rate * duration * 1.05) + 20
    began = time.perf_counter()
    fundings, txs = prebuild(max(count, ingest_count), devices, seed=7)
    prebuild_s = time.perf_counter() - began
    result: dict[str, Any] = {
        "nodes": nodes,
        "duration_s": duration,
        "target_rate_tps": rate,
        "devices": devices,
        "prebuilt": {
            "transactions": len(txs),
            "seconds": round(prebuild_s, 1),
            "note": "payments were signed and their proof of work done before the "
            "timed window, as devices that prepare payments offline would",
        },
        "sig_verify_ceiling_tps": round(ceiling),
    }
    with tempfile.TemporaryDirectory(prefix="tangle-bench-") as tmp:
        devnet = start_devnet(Path(tmp) / "net", nodes, free_base_port(nodes))
        try:
            result.update(
                asyncio.run(
                    load_phase(devnet.apis, fundings, txs[:count], rate, duration, grace=5.0)
                )
            )
            if not skip_quiet:
                result["quiet_network"] = asyncio.run(quiet_phase(devnet.apis[0], 6, 10.0))
        finally:
            devnet.stop()
        single = start_devnet(Path(tmp) / "one", 1, free_base_port(1))
        try:
            ingest = asyncio.run(ingest_phase(single.apis[0], fundings, txs[:ingest_count]))
        finally:
            single.stop()
    result["ingest_tps_per_node"] = round(ingest, 1)
    result["ingest_vs_ceiling"] = round(ingest / ceiling, 3)
    result["goals"] = {
        "ingest >= half the verify ceiling": ingest >= ceiling / 2,
        "confirmed_tps >= 1000": result["confirmed_tps"] >= 1000,
        "confirmation_rate >= 0.99": result["confirmation_rate"] >= 0.99,
        "p50 <= 1 s": result["latency_ms"]["p50"] <= 1000,
        "p99 <= 3 s": result["latency_ms"]["p99"] <= 3000,
    }
    if "quiet_network" in result:
        result["goals"]["quiet p99 <= 5 s"] = result["quiet_network"]["latency_ms"]["max"] <= 5000
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput of a loopback devnet.")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="target submissions per second")
    parser.add_argument(
        "--devices", type=int, help="payers (default: the rate, so each pays once a second)"
    )
    parser.add_argument("--ingest", type=int, default=10_000, help="payments for the ingest phase")
    parser.add_argument("--skip-quiet", action="store_true", help="skip the 60 s quiet phase")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    devices = args.devices or max(10, int(args.rate))
    if not 1 <= args.nodes <= 16 or args.duration <= 0 or args.rate <= 0 or devices < 2:
        parser.error("--nodes 1..16, --duration > 0, --rate > 0 and --devices >= 2")
    result = run(args.nodes, args.duration, args.rate, devices, args.skip_quiet, args.ingest)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
