"""The communicator interface and its one-process implementation."""
from __future__ import annotations

import numpy as np


class Communicator:
    """rank / world size plus a sum all-reduce of small float64 vectors."""

    name = "base"
    rank = 0
    world_size = 1
    local_rank = 0
    local_world_size = 1

    def allreduce_sum(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Leave the process group."""

    def owned(self, n: int) -> range:
        """Members (or items) this rank evaluates: k % world_size == rank."""
        return range(self.rank, n, self.world_size)


class LocalComm(Communicator):
    """A single process: all-reduce is the identity."""

    name = "local"

    def allreduce_sum(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).copy()

    def barrier(self) -> None:
        pass
