"""Communicators: one small interface over a single process, torch.distributed and MPI (mpi4py).

Only scalars (length-N reward vectors, a few counters) ever go through them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .base import Communicator, LocalComm

# World-size variables that MPI launchers export: Open MPI's mpirun, PMI-1/2 (MPICH's Hydra, srun --mpi=pmi2),
# MVAPICH2. PMIx (srun --mpi=pmix) exports only PMIX_RANK, so there Slurm's task count gives the size.
MPI_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def _int(env: Mapping[str, str], name: str) -> int:
    """An integer environment variable, 0 when unset or not a number."""
    try:
        return int(env.get(name, ""))
    except ValueError:
        return 0


def detect(env: Mapping[str, str] = os.environ) -> str:
    """What "auto" means here: torch under torchrun, mpi under an MPI launcher with >1 rank, torch for a plain
    multi-task srun step, else local."""
    if "TORCHELASTIC_RUN_ID" in env or (_int(env, "WORLD_SIZE") > 1 and "MASTER_ADDR" in env):
        return "torch"
    size = max(_int(env, name) for name in MPI_SIZE_VARS)
    if "PMIX_RANK" in env:
        size = max(size, _int(env, "SLURM_STEP_NUM_TASKS") or _int(env, "SLURM_NTASKS"))
    if size > 1:
        return "mpi"
    return "torch" if _int(env, "SLURM_STEP_NUM_TASKS") > 1 else "local"  # srun without PMI: torch from SLURM_*


def make(backend: str = "auto") -> Communicator:
    """The communicator named by `backend` (auto, local, torch, mpi); "auto" resolves with `detect()`."""
    if backend == "auto":
        backend = detect()
    if backend == "local":
        return LocalComm()
    if backend == "mpi":
        from .mpi import MPIComm  # mpi4py is optional: imported only when asked for

        return MPIComm()
    if backend == "torch":
        from .torch_dist import TorchDistComm

        return TorchDistComm()
    raise ValueError(f"dist.backend: unknown communicator {backend!r} (auto, local, torch, mpi)")


__all__ = ["Communicator", "LocalComm", "detect", "make"]
