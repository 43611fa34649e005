"""Communicators: one small interface over a single process and torch.distributed.

Only scalars (length-N reward vectors, a few counters) ever go through them.
"""
from __future__ import annotations

import os

from .base import Communicator, LocalComm


def make(backend: str = "auto") -> Communicator:
    """The communicator named by `backend`; "auto" picks torch.distributed under torchrun."""
    if backend == "auto":
        backend = "torch" if "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1 else "local"
    if backend == "local":
        return LocalComm()
    from .torch_dist import TorchDistComm

    return TorchDistComm()


__all__ = ["Communicator", "LocalComm", "make"]
