"""What a job's HDF5 file records about how it was made: the config, versions, commit and scale."""
from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

import torch
import transformers

from .. import __version__


def git_commit() -> str:
    """The commit of the es_hpc checkout (or "unknown" outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(cfg, job) -> dict:
    """Root attributes of a job's HDF5 file (README, "HDF5 log schema"). Collective: every rank calls it."""
    rank_nodes = job.comm.allgather_text(socket.gethostname())
    return {
        "nodes": ",".join(dict.fromkeys(rank_nodes)), "rank_nodes": ",".join(rank_nodes),
        "config": cfg.to_json(), "es_hpc_version": __version__, "torch_version": torch.__version__,
        "transformers_version": transformers.__version__, "python_version": platform.python_version(),
        "git_commit": git_commit(), "world_size": job.comm.world_size, "comm": job.comm.name,
        "backend": cfg.generation.backend, "model": cfg.model.path, "dtype": job.backend.dtype,
        "task": cfg.task.name,
        "perturbed_parameters": job.perturbed.numel, "threads_per_rank": job.threads,
        "perturbation": cfg.es.perturbation, "noise": job.perturbed.noise.implementation,
    }
