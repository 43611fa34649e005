"""torch.distributed communicator: gloo on CPU, NCCL on GPU, configured from torchrun's or Slurm's environment."""
from __future__ import annotations

import atexit
import datetime
import gc
import os
import re
import socket
import subprocess
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
# Its functions take `group=group.WORLD` as a default, evaluated when it is first imported (transformers imports it
# while it loads a model). Imported after init_process_group, those defaults would hold the group past
# destroy_process_group(), and its threads into interpreter finalization; imported first, they are None.
import torch.distributed.nn.functional  # noqa: F401

from ..config import ConfigError
from ..errors import PeerLost
from .base import Communicator


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list ("gpu[03-05,9],cpu1" -> "gpu03"): `scontrol show hostnames`, else parsed."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             timeout=30, check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass  # no scontrol on this host: the simple one-bracket forms below cover usual names
    m = re.match(r"([^,\[]*)(?:\[([^\],-]+)[^\]]*\]([^,\[]*))?", nodelist)
    return "".join(part or "" for part in m.groups())


def peer_host(addr: str) -> str:
    """ "host (addr)" where the address has a name, else the address."""
    try:
        return f"{socket.gethostbyaddr(addr)[0]} ({addr})"
    except OSError:
        return addr


def tasks_on_node(spec: str, node: int) -> int:
    """Entry `node` of a Slurm tasks-per-node list: "4(x2),3" is 4 tasks on nodes 0 and 1, 3 on node 2."""
    counts: list[int] = []
    for part in spec.split(","):
        n, _, repeat = part.partition("(x")
        counts += [int(n)] * int(repeat.rstrip(")") or 1)
    return counts[min(node, len(counts) - 1)]


def slurm_env(env: Mapping[str, str], hosts: Callable[[str], str] = first_host) -> dict[str, str]:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_*, MASTER_*) for a task started by srun without torchrun."""
    spec = next((env[k] for k in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
                 if env.get(k)), "1")
    out = {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS", "1"),
           "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
           "LOCAL_WORLD_SIZE": str(tasks_on_node(spec, int(env.get("SLURM_NODEID", "0"))))}
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    out["MASTER_ADDR"] = env.get("MASTER_ADDR") or (hosts(nodelist) if nodelist else "127.0.0.1")
    # Every task derives the same port from the job id; 20000-29999 stays below Linux's ephemeral range.
    job = env.get("SLURM_JOB_ID", "")
    out["MASTER_PORT"] = env.get("MASTER_PORT") or str(20000 + int(job) % 10000 if job.isdigit() else 29500)
    return out


class TorchDistComm(Communicator):
    """Joins the process group described by RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (or Slurm's SLURM_*).

    It owns the group's teardown. close() destroys the group, and with it go its threads (gloo's workers and tcp
    loop, rank 0's TCPStore server), joined. A group still alive at interpreter finalization can abort the process
    ("terminate called without an active exception"): a gloo worker that drops a finished collective's tensor
    needs the GIL for the tensor's Python object; once finalization began, Python ends a thread that waits for the
    GIL with pthread_exit, whose unwinding through a noexcept C++ destructor calls std::terminate. So nothing may
    keep the group past close() (see the import above), and an atexit handler, registered once the group exists,
    destroys what close() did not: a group never closed, or one that frames of an exception raised inside a
    collective still held. Other atexit handlers run as usual."""

    name = "torch"

    def __init__(self, timeout_s: float = 600.0):
        if "RANK" not in os.environ and "SLURM_PROCID" in os.environ:  # srun without torchrun
            os.environ.update(slurm_env(os.environ))
        for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise ConfigError(f"dist.backend torch: environment variable {var} is not set "
                                   "(launch with torchrun, or with srun under Slurm)")
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        use_nccl = torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(self.local_rank)
        self.device = torch.device("cuda", self.local_rank) if use_nccl else torch.device("cpu")
        dist.init_process_group("nccl" if use_nccl else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
        # A weak reference: the communicator must not itself keep the group (and its threads) alive.
        self._group: weakref.ref | None = weakref.ref(dist.group.WORLD)
        atexit.register(self._at_exit)

    def _allreduce(self, buf: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(buf).to(self.device)
        self._collective(dist.all_reduce, t, op=dist.ReduceOp.SUM)
        return t.cpu().numpy()

    def _reduce_root(self, buf: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(buf).to(self.device)
        self._collective(dist.reduce, t, dst=0, op=dist.ReduceOp.SUM)
        return t.cpu().numpy()

    def barrier(self) -> None:
        self._collective(dist.barrier)

    def _collective(self, fn, *args, **kwargs) -> None:
        """Run a collective. A peer whose connection closed (gloo: "... by peer [ADDR]:PORT") becomes PeerLost: one
        line naming this rank and the lost peer's host."""
        try:
            fn(*args, **kwargs)
        except RuntimeError as exc:
            found = re.search(r"\[([^\]]+)\]:\d+", str(exc))
            if found is None or "by peer" not in str(exc):
                raise
            raise PeerLost(f"rank {self.rank} on {socket.gethostname()}: lost the connection to {peer_host(found[1])}"
                           f" in {fn.__name__} (a rank there died, or its node failed)") from exc

    def group_alive(self) -> bool:
        """Whether the process group this communicator created still exists (and its threads with it)."""
        return self._group is not None and self._group() is not None

    def _leave(self) -> None:
        """Destroy the process group, which joins its threads. No collective: close() also runs when a rank has
        failed and the others will never answer (the jobs' final barrier is their synchronisation). While an
        exception raised inside a collective propagates, its frames still refer to the group, which then goes
        when they do, or at the latest in the atexit handler."""
        self._teardown()

    def _teardown(self) -> bool:
        """Destroy the group if it is still the default one; True once it no longer exists."""
        group = self._group() if self._group is not None else None
        if group is not None and dist.is_initialized() and dist.group.WORLD is group:
            dist.destroy_process_group()
        del group
        if self.group_alive():
            gc.collect()  # a reference cycle (a finished exception's traceback) may be all that holds it
        if self.group_alive():
            return False
        self._group = None
        atexit.unregister(self._at_exit)
        return True

    def _at_exit(self) -> None:
        """Before finalization: finish what close() did not, so that no backend thread outlives the interpreter."""
        if self._teardown():
            return
        # An uncaught exception raised inside a collective: its printed traceback (sys.last_value) keeps the frames,
        # and so the group, until finalization. Those frames are done; drop their locals.
        seen: set[int] = set()
        exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            traceback.clear_frames(exc.__traceback__)
            exc = exc.__cause__ or exc.__context__
        if self._teardown():
            return
        # Still referenced by something else: its threads outlive this handler. Let a worker that is still releasing
        # a finished collective's tensors take the GIL and finish now, before finalization ends such threads.
        print(f"es_hpc: rank {self.rank}: the torch.distributed process group is still referenced at exit "
              "(its threads outlive the interpreter)", file=sys.stderr)
        time.sleep(0.1)
