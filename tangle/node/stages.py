"""Where a node's accepted submissions spend their time, by stage (layer 5)."""

from __future__ import annotations

import time


class Stages:
    """Seconds spent, and submissions counted, per stage of an *accepted* submission:
    validate (the stateless rules, on a thread, queueing included), parents (waiting
    for them by gossip), attach (admission, attach, index, hand-over), commit (waiting
    for the disk). A refused submission counts nowhere, so the means describe the path
    of the payments a node took."""

    NAMES = ("validate", "parents", "attach", "commit")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self.count = 0

    def timer(self) -> StageTimer:
        return StageTimer(self)


class StageTimer:
    """One submission's stage times, kept aside until :meth:`done` (on success)."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self.began = time.perf_counter()
        self.spent: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        """The time since the last lap (or the start) went to ``stage``."""
        now = time.perf_counter()
        self.spent[stage] = now - self.began
        self.began = now

    def done(self) -> None:
        for stage, seconds in self.spent.items():
            self.stages.seconds[stage] += seconds
        self.stages.count += 1
