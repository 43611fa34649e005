"""Seconds per phase of an ES iteration, as the train log's time/ columns record them."""
from __future__ import annotations

import time
from contextlib import contextmanager

PHASES = ("perturb", "generate", "score", "restore", "exchange", "update")


class PhaseTimer:
    """Seconds spent per phase of one iteration: `with timer("generate"): ...` adds to that phase. The phases are
    fixed up front (the log declares a column for each), PHASES unless a job times more, as the bench's "log"."""

    def __init__(self, phases: tuple[str, ...] = PHASES):
        self.seconds = dict.fromkeys(phases, 0.0)

    @contextmanager
    def __call__(self, phase: str):
        if phase not in self.seconds:
            raise KeyError(f"PhaseTimer: {phase!r} is not one of its phases {tuple(self.seconds)}")
        start = time.perf_counter()
        yield
        self.seconds[phase] += time.perf_counter() - start

    def line(self) -> str:
        """The phases that took at least 5 ms, for the iteration's progress line."""
        return " ".join(f"{p} {v:.2f}s" for p, v in self.seconds.items() if v >= 0.005)
