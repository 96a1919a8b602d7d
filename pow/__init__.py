"""Proof of work for the tangle: standalone, bytes in and nonce out.

``pow.reference`` defines the rule (hashlib only); ``pow.difficulty`` says how much
work a transaction of a given size needs. Nothing here imports ``tangle``.
"""

from pow.difficulty import expected_hashes, required_difficulty, size_bits
from pow.reference import leading_zero_bits, pow_hash, pow_prefix, search, verify, work

__all__ = [
    "expected_hashes",
    "leading_zero_bits",
    "pow_hash",
    "pow_prefix",
    "required_difficulty",
    "search",
    "size_bits",
    "verify",
    "work",
]
