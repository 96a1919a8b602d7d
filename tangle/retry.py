"""When a client asks a node again after a 503 (pure; the API's side is docs/NODE.md).

A node that is behind answers 503 ``overloaded`` with ``Retry-After`` before it does
anything with a request; a node whose commit failed answers 503 ``storage_unavailable``
after it did the work. :func:`retry_wait` is the one rule the wallet's client, the demo
devices and the benchmark's load generator follow: ask again after ``Retry-After`` times
a random factor (so that a fleet does not come back at once), for up to
``RETRY_PATIENCE`` seconds, and after a failed commit only if repeating changes nothing.
"""

from __future__ import annotations

import math
import random

from tangle.schema import ErrorCode

RETRY_PATIENCE = 30.0
"""Seconds a client keeps honouring ``Retry-After`` before it reports the refusal."""
MIN_RETRY_WAIT = 0.5
"""Seconds: the shortest wait, whatever ``Retry-After`` says (no tight loop on 0)."""


def retry_wait(
    status: int,
    code: str,
    retry_after: object,
    rng: random.Random,
    *,
    idempotent: bool,
) -> float | None:
    """How long a client waits before asking again, or None when it must not ask again.

    A 503 ``overloaded`` means nothing was done yet: always ask again. A 503
    ``storage_unavailable`` means the work was done but not committed: ask again only
    when repeating changes nothing (``idempotent``: a read, the same transaction's bytes;
    never a faucet request). The wait is ``retry_after`` (the header, or the error's
    ``retry_after_s``) times a random factor in [0.5, 1.5), so that many devices do not
    come back at once, and at least ``MIN_RETRY_WAIT``.
    """
    if status != 503:
        return None
    if code != ErrorCode.OVERLOADED and not (idempotent and code == ErrorCode.STORAGE_UNAVAILABLE):
        return None
    if isinstance(retry_after, str):
        retry_after = int(retry_after) if retry_after.isdigit() else None
    if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
        return None
    if not math.isfinite(retry_after) or retry_after < 0:
        return None
    return max(MIN_RETRY_WAIT, float(retry_after)) * rng.uniform(0.5, 1.5)
