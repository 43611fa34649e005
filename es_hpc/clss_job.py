"""The clss job: step (1) of CLSS (paper Appendix B.1, Algorithm 2) on a real model.

For each step size alpha and population N, R short ES trajectories of T steps start from the checkpoint's
weights theta*. Step t of trajectory r: the step's prompt batch is drawn, the unperturbed reward J(theta_{t-1}) is
measured on it (prompts sharded over ranks), the N members are evaluated (dealt over ranks, rewards all-reduced)
and every rank applies the same update, as in train.py. The reward recorded for step t is J(theta_t), the
unperturbed reward measured on step t+1's fresh batch (one more measurement after the last step; with
clss.fixed_prompts every step uses the same prompt pool, so J is deterministic in theta), and the locality
metric is ||theta_t - theta*||_2 over the perturbed parameters. Rank 0 writes the layout of analysis/clss/SCHEMA.md,
flushed after every trajectory; `python -m analysis.clss FILE` fits it.
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, comm as comm_mod
from .checkpoint import MASTER
from .config import Config
from .core.seeds import member_seeds, prompt_rng
from .core.update import coefficients
from .tasks import fixed_pool
from .train import PhaseTimer, checkpoint_job_file, evaluate_members, open_job, split_rows


def trajectory_seeds(base: int, alpha_index: int, population: int, seeds: int) -> np.ndarray:
    """Base seeds of the R probe trajectories of one (alpha, N): independent streams for every (alpha, N, r)."""
    return np.array([np.random.SeedSequence([base, alpha_index, population, r, 1 << 33]).generate_state(1, np.uint32)[0]
                     for r in range(seeds)], dtype=np.int64)


def group_name(alpha_index: int, population: int, n_alphas: int) -> str:
    return f"N{population}" if n_alphas == 1 else f"a{alpha_index}_N{population}"


def _create_layout(f, cfg: Config, alphas: list[float]) -> None:
    """One clss/ subgroup per (alpha, N), every trajectory's row pre-filled with NaN (SCHEMA.md): a job stopped
    early shows the populations it never reached as all NaN."""
    c = cfg.clss
    R, T = c.seeds, c.steps
    for ai, alpha in enumerate(alphas):
        for N in c.populations:
            g = f.create_group(f"clss/{group_name(ai, N, len(alphas))}")
            g.attrs.update(population=N, sigma=cfg.es.sigma, alpha=alpha, seeds=R, steps=T,
                           prompts_per_step=c.prompts_per_step, baseline=c.baseline, fixed_prompts=c.fixed_prompts,
                           shaping=cfg.es.shaping, update_form=cfg.es.update_form)
            g.create_dataset("trajectory_seed", data=trajectory_seeds(cfg.es.seed, ai, N, R))
            for key in ("rewards", "distance", "population_mean"):
                g.create_dataset(key, data=np.full((R, T), np.nan, dtype=np.float32))
            g.create_dataset("start_reward", data=np.full(R, np.nan, dtype=np.float32))
            g.create_dataset("wall", data=np.full(R, np.nan))


def run(cfg: Config, checkpoint_dir: Path, out_dir: Path) -> dict | None:
    """Run every probe trajectory; rank 0 returns a summary dict, the other ranks None."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"--checkpoint: no directory {checkpoint_dir}")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(checkpoint_dir)))
    with ExitStack() as cleanup:
        comm = comm_mod.make(cfg.dist.backend)
        cleanup.callback(comm.close)
        return _run(cfg, checkpoint_dir, Path(out_dir), comm, cleanup)


def _run(cfg: Config, checkpoint_dir: Path, out_dir: Path, comm, cleanup: ExitStack) -> dict | None:
    is_root = comm.rank == 0
    say = print if is_root else (lambda *a, **k: None)
    job = open_job(cfg, comm)
    task, backend, perturbed, evaluator, threads = job.task, job.backend, job.perturbed, job.evaluator, job.threads
    if (checkpoint_dir / MASTER).is_file():  # an es_hpc checkpoint of a non-fp32 model: start from its fp32 masters
        perturbed.load_state_dict(checkpoint.load(checkpoint_dir)[1])
    origin = [m.clone() for m in perturbed.masters]  # theta*, restored before every trajectory
    origin_state = dict(zip(perturbed.names, origin))
    train_rows = split_rows(task, "train", cfg.clss.prompts_per_step, "clss.prompts_per_step")
    c = cfg.clss
    alphas = [float(a) for a in c.alphas] or [cfg.es.alpha]
    sigma, R, T, P = cfg.es.sigma, c.seeds, c.steps, c.prompts_per_step
    pool = fixed_pool(train_rows, P, cfg.es.seed) if c.fixed_prompts else None

    f = checkpoint_job_file(cfg, job, out_dir / c.file, checkpoint_dir, cleanup,
                            lambda f: _create_layout(f, cfg, alphas))
    say(f"es_hpc clss: {comm.world_size} rank(s) x {threads} thread(s), {perturbed.numel:,} perturbed parameters, "
        f"N in {c.populations}, alpha in {alphas}, sigma={sigma}, R={R} T={T} P={P}, checkpoint {checkpoint_dir}")

    def distance() -> float:
        return float(np.sqrt(sum(float(torch.sum((m - o) ** 2, dtype=torch.float64)) for m, o in
                                 zip(perturbed.masters, origin))))

    def center_reward(rows) -> float:
        return evaluator.mean(rows)  # the unperturbed weights on `rows`, rows sharded over ranks

    t_start = time.perf_counter()
    summary = []
    for ai, alpha in enumerate(alphas):
        for N in c.populations:
            name = group_name(ai, N, len(alphas))
            rewards = np.full((R, T), np.nan)
            dist = np.full((R, T), np.nan)
            pop_mean = np.full((R, T), np.nan)
            base_seeds = trajectory_seeds(cfg.es.seed, ai, N, R)
            for r in range(R):
                t0 = time.perf_counter()
                perturbed.load_state_dict(origin_state)  # every trajectory starts at theta*
                base = int(base_seeds[r])
                start = None
                for t in range(T + 1):
                    rows = pool or [train_rows[i] for i in prompt_rng(base, t).choice(len(train_rows), P, replace=False)]
                    j = center_reward(rows)  # J(theta_t), on a batch the update of step t never saw unless fixed
                    if t == 0:
                        start = j
                    else:
                        rewards[r, t - 1] = j
                    if t == T:
                        break
                    batch = backend.encode([task.prompt(row) for row in rows])
                    seeds, signs = member_seeds(base, t, N, cfg.es.antithetic)
                    member = comm.allreduce_sum(evaluate_members(job, seeds, signs, sigma, batch, rows, PhaseTimer())[0])
                    pop_mean[r, t] = member.mean()
                    shaped_in = member - j if c.baseline else member
                    coef = coefficients(shaped_in, signs, sigma=sigma, alpha=alpha,
                                        shaping=cfg.es.shaping, update_form=cfg.es.update_form)
                    perturbed.update(seeds, coef)
                    dist[r, t] = distance()
                if f is not None:
                    g = f[f"clss/{name}"]
                    g["rewards"][r] = rewards[r].astype(np.float32)
                    g["distance"][r] = dist[r].astype(np.float32)
                    g["population_mean"][r] = pop_mean[r].astype(np.float32)
                    g["start_reward"][r] = np.float32(start)
                    g["wall"][r] = time.perf_counter() - t0
                    f.flush()
                say(f"traj  alpha={alpha:g} N={N:3d} r={r:2d}  J {start:.3f} -> {rewards[r, -1]:.3f}  "
                    f"tail mean {np.mean(rewards[r, -max(1, T // 4):]):.3f}  distance {dist[r, -1]:.4g}  "
                    f"{time.perf_counter() - t0:.1f}s")
            summary.append({"alpha": alpha, "population": N, "final_reward": float(rewards[:, -1].mean()),
                            "max_distance": float(dist.max())})
    perturbed.load_state_dict(origin_state)
    comm.barrier()  # leave together, as train does
    if not is_root:
        return None
    return {"file": str(out_dir / c.file), "trajectories": len(alphas) * len(c.populations) * R,
            "wall": time.perf_counter() - t_start, "probes": summary}
