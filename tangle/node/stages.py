"""Where a node's accepted submissions spend their time, by stage (layer 5)."""

from __future__ import annotations

import time


class Stages:
    """Seconds spent, and passes, per stage of a submission: validate (the stateless
    rules, on a thread, queueing included), parents (waiting for them by gossip),
    attach (admission, attach, index, hand-over), commit (waiting for the disk)."""

    NAMES = ("validate", "parents", "attach", "commit")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self.count = dict.fromkeys(self.NAMES, 0)

    def add(self, stage: str, began: float) -> float:
        """Count the time since ``began`` (``perf_counter``) to ``stage``; returns now."""
        now = time.perf_counter()
        self.seconds[stage] += now - began
        self.count[stage] += 1
        return now
