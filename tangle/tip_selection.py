"""Tip selection, simple form (layer 3, pure; randomness passed in).

:func:`select_uniform` is the whitepaper's uniform choice among tips, restricted to
tips a new transaction may approve: consistent ones (§8.3 R1) that agree with a
*model tip* (the consistent tip with the largest score, §7.5) so that when two
payments conflict, new transactions pile onto the side with more history and the
other side is left behind. The weighted random walk arrives with the tip-selection
work; this form is exact and small, for demos and tests.
"""

from __future__ import annotations

import random

from tangle.tangle import Tangle
from tangle.transaction import TxId


def model_tip(tangle: Tangle) -> TxId:
    """The consistent tip with the largest score; ties go to the lowest id."""
    tips = tangle.consistent_tips()
    if not tips:  # every tip conflicts: fall back to the genesis, always consistent
        return tangle.genesis.id
    dag = tangle.dag
    return min(tips, key=lambda t: (-dag.score(t), t))


def select_uniform(tangle: Tangle, rng: random.Random) -> tuple[TxId, TxId]:
    """Two tips (possibly the same one) that a new transaction may approve together."""
    model = model_tip(tangle)
    candidates = sorted(t for t in tangle.consistent_tips() if tangle.can_approve(model, t))
    if not candidates:
        return model, model
    trunk = rng.choice(candidates)
    partners = [t for t in candidates if tangle.can_approve(trunk, t)]
    branch = rng.choice(partners)
    return trunk, branch
