"""The communicator interface and its one-process implementation."""
from __future__ import annotations

import numpy as np


class Communicator:
    """rank / world size plus sum reductions of small vectors; counts the bytes it is handed."""

    name = "base"
    rank = 0
    world_size = 1
    local_rank = 0
    local_world_size = 1
    bytes_sent = 0  # payload bytes passed to collectives so far (0 for a single process)
    _before_close: tuple = ()  # callbacks close() runs first (before_close)

    def allreduce_sum(self, x: np.ndarray) -> np.ndarray:
        """Element-wise float64 sum over ranks, returned on every rank."""
        buf = np.array(x, dtype=np.float64)  # a contiguous copy, reduced in place
        self._count(buf)
        return self._allreduce(buf)

    def reduce_sum_root(self, x: np.ndarray) -> np.ndarray | None:
        """Element-wise sum over ranks (dtype kept) delivered to rank 0 only; the others get None."""
        buf = np.array(x)
        self._count(buf)
        out = self._reduce_root(buf)
        return out if self.rank == 0 else None

    def allgather_text(self, text: str, width: int = 64) -> list[str]:
        """Every rank's short string (its first `width` UTF-8 bytes), in rank order, on every rank: each rank fills
        its own row of a zero matrix and one sum all-reduce joins them."""
        rows = np.zeros((self.world_size, width))
        raw = text.encode()[:width]
        rows[self.rank, :len(raw)] = np.frombuffer(raw, np.uint8)
        out = self.allreduce_sum(rows).astype(np.uint8)
        return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in out]

    def _count(self, buf: np.ndarray) -> None:
        if self.world_size > 1:
            self.bytes_sent += buf.nbytes

    def _allreduce(self, buf: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _reduce_root(self, buf: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def before_close(self, fn) -> None:
        """Have close() call fn() first: what was built on the process group (an inference engine, which tears
        down groups of its own) goes while the group still exists. The last registered runs first."""
        self._before_close = (*self._before_close, fn)

    def close(self) -> None:
        """Leave the process group and end what joining it started (threads, connections) before the interpreter
        finalizes. Safe to call twice; it also runs after a rank failed, so it never waits on the others for good.
        Subclasses leave their group in _leave(), which runs even when a before_close callback raises."""
        hooks, self._before_close = self._before_close, ()
        try:
            for fn in reversed(hooks):
                fn()
        finally:
            self._leave()

    def _leave(self) -> None:
        """Leave the process group (nothing to leave for one process)."""

    def owned(self, n: int) -> range:
        """Members (or items) this rank evaluates: k % world_size == rank."""
        return range(self.rank, n, self.world_size)


class LocalComm(Communicator):
    """A single process: all-reduce is the identity."""

    name = "local"

    def _allreduce(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def _reduce_root(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def barrier(self) -> None:
        pass
