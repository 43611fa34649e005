"""torch.distributed communicator: gloo on CPU, NCCL on GPU, configured from torchrun's environment."""
from __future__ import annotations

import datetime
import os

import numpy as np
import torch
import torch.distributed as dist

from .base import Communicator


class TorchDistComm(Communicator):
    """Joins the process group described by RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT."""

    name = "torch"

    def __init__(self, timeout_s: float = 600.0):
        for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"dist.backend torch: environment variable {var} is not set (launch with torchrun)")
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        use_nccl = torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(self.local_rank)
        self.device = torch.device("cuda", self.local_rank) if use_nccl else torch.device("cpu")
        dist.init_process_group("nccl" if use_nccl else "gloo", timeout=datetime.timedelta(seconds=timeout_s))

    def allreduce_sum(self, x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(x, dtype=np.float64), device=self.device).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().numpy()

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
