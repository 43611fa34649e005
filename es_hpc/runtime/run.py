"""The run wrapper every job goes through: its process group, the rank-0 sink, cleanup whatever happens, and a
final barrier so that no rank leaves before rank 0 has written its files."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from .. import comm as comm_mod
from .sink import Sink


def run_job(cfg, body: Callable, *args, stream=None) -> dict | None:
    """body(cfg, comm, sink, *args) on this rank, in the communicator of dist.backend; rank 0 returns the body's
    summary, the other ranks None. The job's file closes and the process group is left even on an error."""
    with ExitStack() as cleanup:
        comm = comm_mod.make(cfg.dist.backend)
        cleanup.callback(comm.close)
        summary = body(cfg, comm, Sink(comm.rank, cleanup, stream), *args)
        comm.barrier()
        return summary if comm.rank == 0 else None
