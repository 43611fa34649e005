"""A job on one rank: threads, the task, the model backend, the parameters ES perturbs and an evaluator."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import tasks
from ..backends.base import Backend
from ..comm import Communicator
from ..config import Config, ConfigError
from ..core import params as params_mod
from ..core.lowrank import LowRankParams
from ..errors import Diverged
from ..eval import population
from ..eval.evaluator import Evaluator
from ..tasks.base import Task
from . import checkpoint


@dataclass
class Job:
    """What every ES job holds on a rank: the task, the model backend, its perturbed parameters, an evaluator."""

    comm: Communicator
    task: Task
    backend: Backend
    perturbed: params_mod.PerturbedParams | None
    evaluator: Evaluator
    threads: int
    members_per_call: int = 1  # generation.members_per_call as configured (0: auto)
    population_memory_mb: int = 1024

    def batch_members(self, prompts: int) -> int:
        """Members evaluated per call on `prompts` prompts: 1 unless the backend holds the model in this process
        (transformers) and generation.members_per_call, or its auto rule (population.members_per_call), says more."""
        if not self.backend.in_process:
            return 1
        return population.members_per_call(self.members_per_call, self.population_memory_mb,
                                           self.evaluator.batch_size, self.perturbed, prompts, self.backend.device)

    def batched(self, prompts: int) -> bool:
        """Whether members go through population.members (several per call, or low-rank noise added in the forward
        pass) rather than being perturbed in place one at a time."""
        return self.backend.in_process and (
            isinstance(self.perturbed, LowRankParams) or self.batch_members(prompts) > 1)

    def banner(self, name: str, details: str) -> str:
        """The job's start-up line: scale, then what this job does."""
        return (f"es_hpc {name}: {self.comm.world_size} rank(s) x {self.threads} thread(s), "
                f"{self.perturbed.numel:,} perturbed parameters, {details}")

    def check_consistency(self, iteration: int) -> None:
        """All-reduce every rank's parameter checksum (one slot each); stop naming the ranks that differ."""
        sums = np.zeros(self.comm.world_size)
        sums[self.comm.rank] = self.perturbed.checksum()
        sums = self.comm.allreduce_sum(sums)
        bad = np.flatnonzero(sums != sums[0]).tolist()
        if bad:
            raise Diverged(f"parameter checksum of rank(s) {bad} differs from rank 0's at iteration {iteration}")


def set_threads(cfg: Config, comm) -> int:
    """CPU threads per rank: runtime.threads, or this node's cores shared among its ranks."""
    n = cfg.runtime.threads or max(1, len(os.sched_getaffinity(0)) // comm.local_world_size)
    torch.set_num_threads(n)
    return n


def make_backend(cfg: Config, comm) -> Backend:
    """generation.backend's model on this rank's device (the vLLM backend imports vllm here, lazily)."""
    if cfg.generation.backend == "vllm":
        from ..backends.vllm import VLLMBackend

        return VLLMBackend(cfg.model, cfg.generation)
    from ..backends.hf import HFBackend, pick_device

    return HFBackend(cfg.model, pick_device(cfg.model.device, comm.local_rank))


def open_job(cfg: Config, comm, perturb: bool = True) -> Job:
    """Set threads, build the task, load the model (`model.path`) and, with `perturb`, wrap the parameters ES
    perturbs (the bench measures generation before the master copy exists)."""
    threads = set_threads(cfg, comm)
    task = tasks.get(cfg.task.name, **cfg.task.options)
    backend = make_backend(cfg, comm)
    comm.before_close(backend.close)
    perturbed = make_perturbed(cfg, backend) if perturb else None
    evaluator = Evaluator(task, backend, comm, cfg.generation.max_new_tokens or task.max_new_tokens,
                          cfg.generation.batch_size, cfg.generation.exact_fast_path, backend.dtype,
                          cfg.task.reward_timeout)
    return Job(comm, task, backend, perturbed, evaluator, threads, cfg.generation.members_per_call,
               cfg.generation.population_memory_mb)


def make_perturbed(cfg: Config, backend: Backend) -> params_mod.PerturbedParams:
    """The parameters ES perturbs (es.params), with isotropic or low-rank noise (es.perturbation); inside the engine
    where the backend keeps them there (params_in_engine)."""
    if backend.params_in_engine:
        if cfg.es.perturbation == "lowrank":
            raise ConfigError(f"es.perturbation: lowrank needs generation.backend: transformers "
                              f"({cfg.generation.backend} perturbs inside its engine, isotropic noise only)")
        return backend.engine_params(cfg.es.params, cfg.es.master_device)
    selected = params_mod.select(backend.named_parameters(), cfg.es.params)
    if cfg.es.perturbation == "lowrank":
        return LowRankParams(selected, cfg.es.rank, cfg.es.master_device)
    return params_mod.PerturbedParams(selected, cfg.es.master_device)


def split_rows(task, split: str, size: int, field: str) -> list[dict]:
    """The rows of `split`, or a ConfigError naming `field` when a job asks for more than the split has."""
    rows = task.rows(split)
    if size > len(rows):
        raise ConfigError(f"{field}: {size} exceeds the {len(rows)} rows of the {split} split")
    return rows


def from_checkpoint(cfg: Config, checkpoint_dir: Path) -> Config:
    """The config of a job that starts from `--checkpoint` (clss, slq): its model.path is the checkpoint."""
    if not Path(checkpoint_dir).is_dir():
        raise FileNotFoundError(f"--checkpoint: no directory {checkpoint_dir}")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(checkpoint_dir)))


def load_masters(job: Job, checkpoint_dir: Path) -> None:
    """Start from an es_hpc checkpoint's fp32 masters where it has them (a non-fp32 model), not its rounded weights."""
    if (Path(checkpoint_dir) / checkpoint.MASTER).is_file():
        job.perturbed.load_state_dict(checkpoint.load(checkpoint_dir)[1])
