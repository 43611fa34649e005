"""The slq job: stochastic Lanczos quadrature (paper Algorithm 3) over a curvature operator of a checkpoint.

The operator acts on the perturbed parameters (es.params) at the checkpoint's weights theta (its fp32 masters when
it has them), on a fixed prompt pool (`tasks.fixed_pool`, slq.prompts rows of slq.split):
  hvp   - autograd Hessian-vector products of the mean answer-token cross-entropy of the task's reference
          completions (es_hpc.curvature.CrossEntropyHessian), the model cast to slq.dtype;
  stein - the perturbation estimator of the Hessian of J_sigma (Appendix G.10, es_hpc.curvature.SteinHessian),
          J = mean reward on the pool: J(theta) and the M = slq.candidates values J(theta + sigma eps_i) are measured
          once (candidates dealt over ranks, M scalars all-reduced); its exact spectrum from the M x M Gram matrix
          is stored beside the SLQ run and compared with it in the summary.
Probe j (Rademacher, `analysis.slq.draw_probe(D, slq.seed, j)`) runs slq.steps Lanczos steps with full
reorthogonalisation (`analysis.slq.lanczos`, float64); probes are dealt over ranks and their tridiagonal
coefficients all-reduced to rank 0, which writes analysis/slq/SCHEMA.md's layout. Analysis: python -m analysis.slq.
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from analysis.slq import SLQResult, draw_probe, lanczos, summaries
from analysis.slq.store import padded_coefficients, read_exact

from . import checkpoint, comm as comm_mod, tasks
from .checkpoint import MASTER
from .config import Config, ConfigError
from .core.seeds import member_seeds
from .curvature import CrossEntropyHessian, SteinHessian, answer_batches
from .train import PhaseTimer, checkpoint_job_file, evaluate_members, open_job, split_rows

DTYPES = {"float64": torch.float64, "float32": torch.float32}
OPERATOR_TEXT = {"hvp": "hessian of mean answer-token cross-entropy (autograd hvp)",
                 "stein": "hessian of J_sigma (perturbation estimator, Appendix G.10)"}


def run(cfg: Config, checkpoint_dir: Path, out_dir: Path) -> dict | None:
    """Run every probe; rank 0 returns a summary dict, the other ranks None."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"--checkpoint: no directory {checkpoint_dir}")
    if (out_dir / cfg.slq.file).exists():  # every rank stops here, before any work
        raise FileExistsError(f"--out: {out_dir / cfg.slq.file} already exists; choose a new --out")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(checkpoint_dir)))
    with ExitStack() as cleanup:
        comm = comm_mod.make(cfg.dist.backend)
        cleanup.callback(comm.close)
        return _run(cfg, checkpoint_dir, out_dir, comm, cleanup)


class FlatOperator:
    """A tensor-list operator seen as v -> A v on flat float64 numpy vectors (what analysis.slq.lanczos needs)."""

    def __init__(self, matvec, shapes: list[torch.Size], device: torch.device, dtype: torch.dtype):
        self.apply, self.shapes, self.device, self.dtype = matvec, shapes, device, dtype
        self.splits = np.cumsum([s.numel() for s in shapes])[:-1]
        self.calls = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        v = [torch.from_numpy(part).view(s).to(self.device, self.dtype) for part, s in
             zip(np.split(x, self.splits), self.shapes)]
        return np.concatenate([t.detach().reshape(-1).to("cpu", torch.float64).numpy() for t in self.apply(v)])


def _run(cfg: Config, checkpoint_dir: Path, out_dir: Path, comm, cleanup: ExitStack) -> dict | None:
    is_root = comm.rank == 0
    say = print if is_root else (lambda *a, **k: None)
    c = cfg.slq
    if c.operator == "stein" and cfg.es.perturbation != "isotropic":
        raise ConfigError("es.perturbation: the Stein operator's Hessian estimate needs isotropic Gaussian noise")
    job = open_job(cfg, comm)
    task, backend, perturbed, evaluator = job.task, job.backend, job.perturbed, job.evaluator
    if (checkpoint_dir / MASTER).is_file():  # an es_hpc checkpoint of a non-fp32 model: its fp32 masters are theta
        perturbed.load_state_dict(checkpoint.load(checkpoint_dir)[1])
    rows = split_rows(task, c.split, c.prompts, "slq.prompts")
    pool_ids = tasks.fixed_pool_ids(len(rows), c.prompts, c.pool_seed)
    pool = [rows[i] for i in pool_ids]
    dtype, n, shapes = DTYPES[c.dtype], perturbed.numel, [m.shape for m in perturbed.masters]
    say(f"es_hpc slq: {comm.world_size} rank(s) x {job.threads} thread(s), operator {c.operator}, {n:,} perturbed "
        f"parameters, {c.probes} probes x {c.steps} Lanczos steps, {c.prompts} prompts, checkpoint {checkpoint_dir}")
    t_start = time.perf_counter()

    stein = stein_group = None
    if c.operator == "hvp":
        refs = [task.reference_completion(r) for r in pool]
        if None in refs:
            raise ConfigError(f"slq.operator: hvp needs reference completions, which task {cfg.task.name!r} lacks")
        model = backend.model
        model.set_attn_implementation("eager")  # SDPA's CPU kernel has no double backward
        model.to(dtype)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, m in zip(perturbed.names, perturbed.masters):
                params[name].copy_(m)  # theta from the fp32 masters, not from a rounded working copy
        batches = answer_batches(backend.tokenizer, backend.eos_ids[0], [task.prompt(r) for r in pool], refs,
                                 cfg.generation.batch_size, backend.device)
        op = CrossEntropyHessian(model, perturbed.names, batches)
        with torch.no_grad():
            say(f"surrogate: mean cross-entropy {float(op.loss(op.params)):.4f} over {op.tokens} answer tokens")
        flat = FlatOperator(op.matvec, shapes, backend.device, dtype)
    else:
        sigma, M = cfg.es.sigma, c.candidates
        batch = backend.encode([task.prompt(r) for r in pool])
        reward0 = evaluator.mean(pool)
        seeds, signs = member_seeds(c.seed, 0, M, cfg.es.antithetic)
        rewards = np.zeros(M)
        chunk = 8 * comm.world_size
        for s in range(0, M, chunk):
            part = slice(s, min(s + chunk, M))
            rewards[part] = comm.allreduce_sum(
                evaluate_members(job, seeds[part], signs[part], sigma, batch, pool, PhaseTimer())[0])
            say(f"candidates {part.stop:4d}/{M}  J(theta) {reward0:.4f}  mean J(theta + sigma eps) "
                f"{rewards[:part.stop].mean():.4f}  {time.perf_counter() - t_start:.1f}s")
        deltas = rewards - reward0

        def noise(i: int, t: int) -> torch.Tensor:
            return perturbed.noise.draw(int(seeds[i]), perturbed.indices[t], shapes[t]).mul_(float(signs[i]))

        stein = SteinHessian(noise, len(shapes), deltas, sigma, dtype)
        flat = FlatOperator(stein.matvec, shapes, perturbed.masters[0].device, dtype)
        stein_group = (dict(sigma=sigma, reward0=reward0, candidates=M, shift=stein.shift),
                       {"seeds": seeds, "signs": signs, "rewards": rewards,
                        "eigenvalues": stein.exact_spectrum()[0].numpy() if is_root else None})  # rank 0 writes
        say(f"stein: {int(np.count_nonzero(deltas))}/{M} candidates change the reward; shift {stein.shift:.4g}")

    S, m = c.probes, min(c.steps, n)
    f = checkpoint_job_file(cfg, job, out_dir / c.file, checkpoint_dir, cleanup,
                            lambda f: _create_layout(f, c, n, m, pool_ids, stein_group))
    alpha, beta = np.zeros((S, m)), np.zeros((S, max(m - 1, 0)))
    length, norm2, wall = np.zeros(S), np.zeros(S), np.zeros(S)
    for j in comm.owned(S):
        t0 = time.perf_counter()
        z = draw_probe(n, c.seed, j)
        a, b = lanczos(flat, z, m)
        alpha[j, :len(a)], beta[j, :len(b)], length[j], norm2[j] = a, b, len(a), z @ z
        wall[j] = time.perf_counter() - t0
        nodes = np.linalg.eigvalsh(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))
        say(f"probe {j:3d}/{S}  {len(a)} steps  Ritz values [{nodes[0]:.4g}, {nodes[-1]:.4g}]  {wall[j]:.1f}s")
    packed = comm.allreduce_sum(np.concatenate([alpha.ravel(), beta.ravel(), length, norm2, wall]))
    alpha, beta = packed[:S * m].reshape(S, m), packed[S * m:S * (2 * m - 1)].reshape(S, max(m - 1, 0))
    length, norm2, wall = (packed[S * (2 * m - 1) + k * S:S * (2 * m - 1) + (k + 1) * S] for k in range(3))

    summary = None
    if is_root:
        k = length.astype(int)
        result = SLQResult(alpha=tuple(a[:kj] for a, kj in zip(alpha, k)),
                           beta=tuple(b[:kj - 1] for b, kj in zip(beta, k)), probe_norm2=norm2, n=n,
                           probe_dist="rademacher", seed=c.seed, operator=OPERATOR_TEXT[c.operator])
        g = f["slq"]
        for key, data in zip(("alpha", "beta"), padded_coefficients(result)):
            g[key].resize(data.shape[1], axis=1)
            g[key][...] = data
        g["probe_norm2"][...], g["wall"][...] = norm2, wall
        summary = {"file": str(out_dir / c.file), "operator": c.operator, "n": n, "probes": S, "steps": m,
                   "summaries": result.summaries()}
        if stein is not None:
            exact = summaries(*read_exact(f))
            summary["stein"] = {"reward0": float(f["slq/stein"].attrs["reward0"]), "exact": exact,
                                "relative_error": {key: abs(summary["summaries"][key] - v) / abs(v) if v else None
                                                   for key, v in exact.items()}}
            say("stein exact vs SLQ: " + "  ".join(f"{key} {v:.4g}/{summary['summaries'][key]:.4g}"
                                                    for key, v in exact.items()))
        f.flush()
        summary["wall"] = time.perf_counter() - t_start
    comm.barrier()  # leave together, once rank 0 has written the file
    return summary


def _create_layout(f, c, n: int, m: int, pool_ids: np.ndarray, stein_group) -> None:
    """SCHEMA.md's slq/ group, waiting for the probes (alpha and beta without columns, probe_norm2 and wall NaN,
    until every probe has run), and for the Stein operator `stein_group` = (attributes, datasets) of slq/stein."""
    S = c.probes
    g = f.create_group("slq")
    g.attrs.update(n=np.int64(n), probe_dist="rademacher", operator=OPERATOR_TEXT[c.operator], seed=np.int64(c.seed),
                   kind=c.operator, steps=c.steps, prompts=c.prompts, pool_seed=c.pool_seed, split=c.split,
                   dtype=c.dtype)
    for key in ("alpha", "beta"):
        g.create_dataset(key, shape=(S, 0), maxshape=(S, None), chunks=(S, m), dtype=np.float64)
    for key in ("probe_norm2", "wall"):
        g.create_dataset(key, data=np.full(S, np.nan))
    g.create_dataset("prompt_ids", data=pool_ids)
    if stein_group is not None:
        attrs, data = stein_group
        stein = g.create_group("stein")
        stein.attrs.update(attrs)
        for key, value in data.items():
            stein.create_dataset(key, data=value)
