"""The errors of ``pow`` (standalone: nothing here imports ``tangle``).

::

    PowError(Exception)                          anything pow raises besides bad arguments
      NonceSpaceExhausted(PowError, RuntimeError) no nonce from ``start`` meets the difficulty

Bad arguments (a negative size, a difficulty out of range) are ``ValueError`` with
expected against actual, as everywhere. Errors keep their raw arguments in ``args`` and
build their message in ``__str__``, so they pickle across the process pool.
"""

from __future__ import annotations


class PowError(Exception):
    """Base class of the proof-of-work errors."""


class NonceSpaceExhausted(PowError, RuntimeError):
    """Every nonce from ``start`` to 2**64 - 1 was tried; none meets ``difficulty``."""

    def __init__(self, start: int, difficulty: int) -> None:
        super().__init__(start, difficulty)
        self.start = start
        self.difficulty = difficulty

    def __str__(self) -> str:
        return (
            f"nonce: expected one from {self.start} meeting difficulty {self.difficulty}, "
            "found none up to 2**64 - 1"
        )
