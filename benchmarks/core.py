"""Throughput of the pure core on this machine: codec, checks and attach.

    python -m benchmarks.core [--transactions N] [--json]

Every figure is operations per second on one core, measured in this run. The Ed25519
verification rate is printed beside the others because it is the ceiling for
validating signed transactions: the ratios say how far the rest is from it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

import pow
from benchmarks import jsonout
from tangle import NetworkParams, OutputId, Tangle, Transaction, decode, make_genesis
from tangle.builder import build
from tangle.signing import Keypair, verify_signature
from tangle.validation import validate_stateless

NETWORK_ID = 0x62656E6368  # "bench"


def rate(fn: Callable[[], object], repeat: int) -> float:
    """Calls per second of ``fn``, best of three rounds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, time.perf_counter() - start)
    return repeat / best


def make_payments(n: int, params: NetworkParams) -> tuple[Transaction, list[Transaction]]:
    """A genesis and ``n`` consistent payments between 8 devices."""
    rng = random.Random(7)
    keys = [Keypair(rng.getrandbits(256).to_bytes(32, "big")) for _ in range(8)]
    genesis = make_genesis(NETWORK_ID, {k.address: 1_000_000 for k in keys})
    tangle = Tangle(genesis, params)
    txs: list[Transaction] = []
    utxo = {
        k.address: OutputId(genesis.id, i)
        for i, k in enumerate(sorted(keys, key=lambda k: k.address))
    }
    balance = {k.address: 1_000_000 for k in keys}
    for i in range(n):
        payer, payee = rng.sample(keys, 2)
        # Approve the newest transaction and a random older one: every payer's change
        # output is then in the past cone, and the DAG has real two-parent structure.
        trunk = txs[-1].id if txs else genesis.id
        branch = rng.choice(txs).id if txs else genesis.id
        amount = rng.randint(1, 10)
        tx = build(
            payer,
            params,
            trunk=trunk,
            branch=branch,
            timestamp=i,
            inputs=[utxo[payer.address]],
            payments={payee.address: amount, payer.address: balance[payer.address] - amount},
            payload=f"wh={i}".encode(),
        )
        tangle.attach(tx)
        assert tangle.is_consistent(tx.id)
        for index, output in enumerate(tx.outputs):
            if output.address == payer.address:
                utxo[payer.address] = OutputId(tx.id, index)
        balance[payer.address] -= amount
        # The payee's new output is not tracked: each device spends only its own change.
        txs.append(tx)
    return genesis, txs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    params = NetworkParams(network_id=NETWORK_ID, base_difficulty=0)
    genesis, txs = make_payments(args.transactions, params)
    sample = txs[len(txs) // 2]
    raw = sample.encode()
    key = Keypair(bytes(32))
    message, signature = b"m" * 32, key.sign(b"m" * 32)

    def attach_all() -> None:
        tangle = Tangle(genesis, params)
        for tx in txs:
            tangle.attach_validated(tx)

    start = time.perf_counter()
    attach_all()
    attach_seconds = time.perf_counter() - start
    figures = {
        "transactions": len(txs),
        "payment_size_bytes": sample.size,
        "decode_per_s": rate(lambda: decode(raw), 20_000),
        "encode_and_id_per_s": rate(
            lambda: Transaction(
                **{  # construct = check + encode + id
                    f: getattr(sample, f)
                    for f in (
                        "network_id",
                        "timestamp",
                        "trunk",
                        "branch",
                        "issuer",
                        "inputs",
                        "outputs",
                        "payload",
                        "signature",
                        "nonce",
                    )
                }
            ),
            20_000,
        ),
        "pow_verify_per_s": rate(lambda: pow.verify(sample.pow_data(), sample.nonce, 0), 50_000),
        "ed25519_verify_per_s": rate(
            lambda: verify_signature(key.public_key, message, signature), 3_000
        ),
        "stateless_validation_per_s": rate(lambda: validate_stateless(sample, params), 3_000),
        "attach_prevalidated_per_s": len(txs) / attach_seconds,
    }
    ceiling = figures["ed25519_verify_per_s"]
    figures["attach_vs_verify_ceiling"] = figures["attach_prevalidated_per_s"] / ceiling
    if args.json:
        print(jsonout.dumps(figures))
        return 0
    print(f"core benchmark, {len(txs)} payments of {sample.size} bytes, one core")
    for name, value in figures.items():
        print(
            f"  {name:<28} {value:>14,.2f}"
            if isinstance(value, float)
            else f"  {name:<28} {value:>14}"
        )
    print("  (attach excludes signature and PoW checks; the ratio is to one core's Ed25519 verify)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
