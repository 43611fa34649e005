"""A scheduler's stop request, held until the job reaches a point where every rank can stop together."""
from __future__ import annotations

import signal


class StopRequest:
    """Remembers SIGTERM or SIGUSR1 (a scheduler's warning) until the next iteration boundary."""

    def __init__(self):
        self.signal = 0
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.signal = signum
