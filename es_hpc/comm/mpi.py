"""MPI communicator through mpi4py, for jobs started by mpirun / mpiexec or by srun with PMI."""
from __future__ import annotations

import numpy as np

from .base import Communicator

INSTALL_HINT = "pip install mpi4py, plus an MPI library such as Debian's openmpi-bin libopenmpi-dev"


def import_mpi():
    """mpi4py's MPI module (initialises MPI), or a one-line RuntimeError saying how to install it."""
    try:
        import mpi4py

        mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI; torch's own threads never do
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:  # mpi4py absent, or present without a loadable libmpi
        why = " ".join(str(exc).split())  # keep the message on one line
        raise RuntimeError(f"dist.backend mpi: mpi4py is unavailable ({why}); {INSTALL_HINT}") from None
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

    def allreduce_sum(self, x: np.ndarray) -> np.ndarray:
        buf = np.array(x, dtype=np.float64)  # a contiguous copy, reduced in place
        self._world.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        return buf

    def barrier(self) -> None:
        self._world.Barrier()

    def close(self) -> None:
        """Free the node communicator; mpi4py finalises MPI itself at interpreter exit."""
        if self._node is not None:
            self._node.Free()
            self._node = None
