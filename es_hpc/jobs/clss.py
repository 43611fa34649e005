"""The clss job: step (1) of CLSS (paper Appendix B.1, Algorithm 2) on a real model.

For each step size alpha and population N, R short ES trajectories of T steps start from the checkpoint's
weights theta*. Step t of trajectory r: the step's prompt batch is drawn, the unperturbed reward J(theta_{t-1}) is
measured on it (prompts sharded over ranks), the N members are evaluated (dealt over ranks, rewards all-reduced)
and every rank applies the same update (es_hpc.core.strategy, as in the train job). The reward recorded for step
t is J(theta_t), the unperturbed reward measured on step t+1's fresh batch (one more measurement after the last step; with
clss.fixed_prompts every step uses the same prompt pool, so J is deterministic in theta), and the locality
metric is ||theta_t - theta*||_2 over the perturbed parameters. Beside them each update's N raw member rewards
(before baseline subtraction and shaping) and, with clss.baseline, the J(theta_{t-1}) subtracted from them are
stored, so that analysis.clss can measure the noise the update really injects (kappa_eff, SCHEMA.md) rather than
assume sigma^2/N (Eq. 14). Antithetic members are refused: their weights enter as u+ - u-, which member_rewards
does not describe. Rank 0 writes the layout of analysis/clss/SCHEMA.md, flushed after every trajectory;
`python -m analysis.clss FILE` fits it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..config import Config, ConfigError
from ..core.seeds import prompt_rng
from ..core.strategy import ES
from ..eval.members import evaluate_over_ranks
from ..runtime.job import from_checkpoint, load_masters, open_job, split_rows
from ..runtime.provenance import provenance
from ..runtime.run import run_job
from ..runtime.timing import PhaseTimer
from ..tasks import fixed_pool


def trajectory_seeds(base: int, alpha_index: int, population: int, trajectories: int) -> np.ndarray:
    """Base seeds of the R probe trajectories of one (alpha, N): independent streams for every (alpha, N, r)."""
    return np.array([np.random.SeedSequence([base, alpha_index, population, r, 1 << 33]).generate_state(1, np.uint32)[0]
                     for r in range(trajectories)], dtype=np.int64)


def group_name(alpha_index: int, population: int, n_alphas: int) -> str:
    return f"N{population}" if n_alphas == 1 else f"a{alpha_index}_N{population}"


def _create_layout(f, cfg: Config, alphas: list[float]) -> None:
    """One clss/ subgroup per (alpha, N), every trajectory's row pre-filled with NaN (SCHEMA.md): a job stopped
    early shows the populations it never reached as all NaN."""
    c = cfg.clss
    R, T = c.trajectories, c.steps
    for ai, alpha in enumerate(alphas):
        for N in c.populations:
            g = f.create_group(f"clss/{group_name(ai, N, len(alphas))}")
            g.attrs.update(population=N, sigma=cfg.es.sigma, alpha=alpha, seeds=R, steps=T,
                           prompts_per_step=c.prompts_per_step, baseline=c.baseline, fixed_prompts=c.fixed_prompts,
                           shaping=cfg.es.shaping, update_form=cfg.es.update_form)
            g.create_dataset("trajectory_seed", data=trajectory_seeds(cfg.es.seed, ai, N, R))
            for key in ("rewards", "distance", "population_mean") + (("baseline_rewards",) if c.baseline else ()):
                g.create_dataset(key, data=np.full((R, T), np.nan, dtype=np.float32))
            g.create_dataset("member_rewards", data=np.full((R, T, N), np.nan, dtype=np.float32))
            g.create_dataset("start_reward", data=np.full(R, np.nan, dtype=np.float32))
            g.create_dataset("wall", data=np.full(R, np.nan))


def run(cfg: Config, checkpoint_dir: Path, out_dir: Path) -> dict | None:
    """Run every probe trajectory; rank 0 returns a summary dict, the other ranks None."""
    if cfg.es.antithetic:  # every rank stops here, before any work
        raise ConfigError("es.antithetic: the clss job runs without antithetic sampling (member_rewards cannot "
                          "describe the pairs' weights; analysis/clss/SCHEMA.md)")
    return run_job(from_checkpoint(cfg, checkpoint_dir), _clss, Path(checkpoint_dir), Path(out_dir))


def _clss(cfg: Config, comm, sink, checkpoint_dir: Path, out_dir: Path) -> dict | None:
    c = cfg.clss
    job = open_job(cfg, comm)
    load_masters(job, checkpoint_dir)
    origin = {n: m.clone() for n, m in zip(job.perturbed.names, job.perturbed.masters)}  # theta*
    train_rows = split_rows(job.task, "train", c.prompts_per_step, "clss.prompts_per_step")
    alphas = list(c.alphas) or [cfg.es.alpha]
    pool = fixed_pool(train_rows, c.prompts_per_step, cfg.es.seed) if c.fixed_prompts else None
    sink.open(out_dir / c.file, dict(provenance(cfg, job), checkpoint=str(checkpoint_dir)), {},
              lambda f: _create_layout(f, cfg, alphas))
    sink.say(job.banner("clss", f"N in {list(c.populations)}, alpha in {alphas}, sigma={cfg.es.sigma}, "
                                f"R={c.trajectories} T={c.steps} P={c.prompts_per_step}, checkpoint {checkpoint_dir}"))
    t_start = time.perf_counter()
    summary = []
    for ai, alpha in enumerate(alphas):
        for N in c.populations:
            name = f"clss/{group_name(ai, N, len(alphas))}"
            final, far = [], 0.0
            for r, base in enumerate(trajectory_seeds(cfg.es.seed, ai, N, c.trajectories)):
                t0 = time.perf_counter()
                job.perturbed.load_state_dict(origin)  # every trajectory starts at theta*
                es = ES.from_config(cfg.es, seed=int(base), population=N, alpha=alpha)
                start, rewards, dist, members, baseline = _trajectory(cfg, job, es, origin, train_rows, pool)
                sink.write(name, r, rewards=rewards.astype(np.float32), distance=dist.astype(np.float32),
                           population_mean=members.mean(axis=1).astype(np.float32),
                           member_rewards=members.astype(np.float32),
                           **({"baseline_rewards": baseline.astype(np.float32)} if c.baseline else {}),
                           start_reward=np.float32(start), wall=time.perf_counter() - t0)
                sink.say(f"traj  alpha={alpha:g} N={N:3d} r={r:2d}  J {start:.3f} -> {rewards[-1]:.3f}  "
                         f"tail mean {np.mean(rewards[-max(1, c.steps // 4):]):.3f}  distance {dist[-1]:.4g}  "
                         f"{time.perf_counter() - t0:.1f}s")
                final, far = final + [rewards[-1]], max(far, float(dist.max()))
            summary.append({"alpha": alpha, "population": N, "final_reward": float(np.mean(final)),
                            "max_distance": far})
    job.perturbed.load_state_dict(origin)
    return {"file": str(out_dir / c.file), "trajectories": len(alphas) * len(c.populations) * c.trajectories,
            "wall": time.perf_counter() - t_start, "probes": summary}


def _trajectory(cfg: Config, job, es: ES, origin: dict, train_rows: list[dict], pool) -> tuple:
    """T ES steps from theta*: J(theta_0), and for t = 1..T J(theta_t), ||theta_t - theta*||, the N raw member
    rewards of the update t-1 -> t (T, N) and the J(theta_{t-1}) measured on that update's batch (its baseline).
    J(theta_t) is measured on step t+1's batch, which the update of step t never saw (unless clss.fixed_prompts)."""
    c, perturbed = cfg.clss, job.perturbed
    rewards, dist, base = (np.full(c.steps, np.nan) for _ in range(3))
    members = np.full((c.steps, es.population), np.nan)
    start = None
    for t in range(c.steps + 1):
        rows = pool or [train_rows[i] for i in
                        prompt_rng(es.seed, t).choice(len(train_rows), c.prompts_per_step, replace=False)]
        j = job.evaluator.mean(rows)  # the unperturbed weights on `rows`, rows sharded over ranks
        if t == 0:
            start = j
        else:
            rewards[t - 1] = j
        if t == c.steps:
            break
        batch = job.backend.encode([job.task.prompt(row) for row in rows])
        seeds, signs = es.ask(t)
        members[t] = evaluate_over_ranks(job, seeds, signs, es.sigma, batch, rows, PhaseTimer())[0]
        base[t] = j
        es.tell(perturbed, seeds, signs, members[t] - j if c.baseline else members[t])
        dist[t] = np.sqrt(sum(float(torch.sum((m - origin[n]) ** 2, dtype=torch.float64))
                              for n, m in zip(perturbed.names, perturbed.masters)))
    return start, rewards, dist, members, base
