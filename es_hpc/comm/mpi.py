"""MPI communicator through mpi4py, for jobs started by mpirun / mpiexec or by srun with PMI."""
from __future__ import annotations

import sys
import time

import numpy as np

from ..config import ConfigError
from .base import Communicator

INSTALL_HINT = "pip install mpi4py, plus an MPI library such as Debian's openmpi-bin libopenmpi-dev"


def import_mpi():
    """mpi4py's MPI module (initialises MPI), or a one-line ConfigError saying how to install it."""
    try:
        import mpi4py

        mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI; torch's own threads never do
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:  # mpi4py absent, or present without a loadable libmpi
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # one line (libmpi errors list paths)
        raise ConfigError(f"dist.backend mpi: mpi4py is unavailable ({why}); {INSTALL_HINT}") from None
    return MPI


class MPIComm(Communicator):
    """Ranks of MPI.COMM_WORLD; the local rank / size come from this node's shared-memory sub-communicator."""

    name = "mpi"

    def __init__(self):
        self._mpi = MPI = import_mpi()
        self._world = MPI.COMM_WORLD
        self.rank, self.world_size = self._world.Get_rank(), self._world.Get_size()
        self._node = self._world.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # ranks sharing this node
        self.local_rank, self.local_world_size = self._node.Get_rank(), self._node.Get_size()
        import torch

        if torch.cuda.is_available():  # one GPU per local rank, as under torchrun
            torch.cuda.set_device(self.local_rank)

    def _allreduce(self, buf: np.ndarray) -> np.ndarray:
        self._world.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        return buf

    def _reduce_root(self, buf: np.ndarray) -> np.ndarray:
        out = np.empty_like(buf)
        self._world.Reduce(buf, out, op=self._mpi.SUM, root=0)
        return out

    def barrier(self) -> None:
        self._world.Barrier()

    def _leave(self, grace_s: float = 10.0) -> None:
        """Free the node communicator; mpi4py finalises MPI at interpreter exit, or aborts the job (see below).

        MPI_Finalize waits for every rank, so a rank that fails alone would hang while its peers sit in a
        collective. When an exception is propagating, all ranks that reach close() within `grace_s` (errors
        every rank raises together: bad config, preemption, divergence) finalise normally and keep their exit
        code; otherwise this rank exits through MPI_Abort(1), which makes mpirun / srun end the whole job.
        """
        if self._node is None:
            return
        if sys.exc_info()[1] is not None:
            together, deadline = self._world.Ibarrier(), time.monotonic() + grace_s
            while not together.Test():
                if time.monotonic() > deadline:
                    self._mpi._set_abort_status(1)  # MPI_Abort at exit, after the traceback is printed
                    return
                time.sleep(0.01)
        self._node.Free()
        self._node = None
