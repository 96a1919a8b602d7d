"""Proof of work for the tangle: standalone, bytes in and nonce out (PROTOCOL §6).

- ``pow.reference``: the rule, hashlib only; verification and a plain search.
- ``pow.vectorized``: the same search over numpy batches of nonces.
- ``pow.pool``: the search on every core, with cancellation, timeouts and progress.
- ``pow.difficulty``: how much work a transaction needs and how long it takes.
- ``pow.adaptive``: more work for issuers that send too fast (node-local admission).

Importing ``pow`` does not import numpy: verifying needs only hashlib. Nothing here
imports ``tangle``.
"""

from pow.difficulty import (
    DEFAULT_BASE_DIFFICULTY,
    Estimate,
    estimate,
    expected_hashes,
    required_difficulty,
    size_bits,
)
from pow.errors import NonceSpaceExhausted, PowError
from pow.reference import leading_zero_bits, pow_hash, pow_prefix, search, verify, work

VECTORIZE_FROM = 10
"""Difficulties below this are searched by the plain loop: a numpy batch would cost
more than the few hundred hashes they need."""


def solve(data: bytes, difficulty: int, start: int = 0) -> int:
    """The smallest nonce from ``start`` meeting ``difficulty``, on this core.

    Every searcher returns the same nonce (§6.4); this picks the fastest for the job.
    """
    if difficulty < VECTORIZE_FROM:
        nonce = search(data, difficulty, start)
    else:
        from pow import vectorized

        nonce = vectorized.search(data, difficulty, start)
    if nonce is None:  # pragma: no cover - needs 2**64 hashes
        raise NonceSpaceExhausted(start, difficulty)
    return nonce


__all__ = [
    "DEFAULT_BASE_DIFFICULTY",
    "VECTORIZE_FROM",
    "Estimate",
    "NonceSpaceExhausted",
    "PowError",
    "estimate",
    "expected_hashes",
    "leading_zero_bits",
    "pow_hash",
    "pow_prefix",
    "required_difficulty",
    "search",
    "size_bits",
    "solve",
    "verify",
    "work",
]
