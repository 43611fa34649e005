"""The slq job: stochastic Lanczos quadrature (paper Algorithm 3) over a curvature operator of a checkpoint.

The operator acts on the perturbed parameters (es.params) at the checkpoint's weights theta (its fp32 masters when
it has them), on a fixed prompt pool (`tasks.fixed_pool`, slq.prompts rows of slq.split):
  hvp   - autograd Hessian-vector products of the mean answer-token cross-entropy of the task's reference
          completions (es_hpc.landscape.curvature.CrossEntropyHessian), the model cast to slq.dtype;
  stein - the perturbation estimator of the Hessian of J_sigma (Appendix G.10, es_hpc.landscape.curvature.SteinHessian),
          J = mean reward on the pool: J(theta) and the M = slq.candidates values J(theta + sigma eps_i) are measured
          once (candidates dealt over ranks, M scalars all-reduced); its exact spectrum from the M x M Gram matrix
          is stored beside the SLQ run and compared with it in the summary, and with slq.null_permutations > 0 the
          Stein null: the same formula with dR permuted among the candidates (at M << D the Gram matrix is close to
          D I, so the spectrum mostly reflects D and the dR histogram; the null band shows how much).
Probe j (Rademacher, `analysis.slq.draw_probe(D, slq.seed, j)`) runs slq.steps Lanczos steps with full
reorthogonalisation (`analysis.slq.lanczos`, float64); probes are dealt over ranks and their tridiagonal
coefficients all-reduced to rank 0, which writes analysis/slq/SCHEMA.md's layout. Analysis: python -m analysis.slq.
The file records whose Hessian it holds (`slq/@objective`: the hvp operator's is the cross-entropy's, the opposite
sign of the reward's); the printed summary, like python -m analysis.slq, is that of the reward objective.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from analysis.slq import SLQResult, draw_probe, lanczos, summaries
from analysis.slq.__main__ import null_band
from analysis.slq.store import as_reward, objective, padded_coefficients, read_exact, read_null

from .. import tasks
from ..config import Config, ConfigError
from ..core.seeds import member_seeds
from ..eval.members import evaluate_over_ranks
from ..landscape.curvature import CrossEntropyHessian, FlatOperator, SteinHessian, answer_batches
from ..runtime.job import from_checkpoint, load_masters, open_job, split_rows
from ..runtime.provenance import provenance
from ..runtime.run import run_job
from ..runtime.timing import PhaseTimer

DTYPES = {"float64": torch.float64, "float32": torch.float32}
OPERATOR_TEXT = {"hvp": "hessian of mean answer-token cross-entropy (autograd hvp)",
                 "stein": "hessian of J_sigma (perturbation estimator, Appendix G.10)"}
OBJECTIVE = {"hvp": "cross_entropy", "stein": "reward"}  # whose Hessian each operator is (slq/@objective)


def run(cfg: Config, checkpoint_dir: Path, out_dir: Path) -> dict | None:
    """Run every probe; rank 0 returns a summary dict, the other ranks None."""
    out_dir = Path(out_dir)
    if (out_dir / cfg.slq.file).exists():  # every rank stops here, before any work
        raise FileExistsError(f"--out: {out_dir / cfg.slq.file} already exists; choose a new --out")
    if cfg.slq.operator == "stein" and cfg.es.perturbation != "isotropic":
        raise ConfigError("es.perturbation: the Stein operator's Hessian estimate needs isotropic Gaussian noise")
    return run_job(from_checkpoint(cfg, checkpoint_dir), _slq, Path(checkpoint_dir), out_dir)


def _slq(cfg: Config, comm, sink, checkpoint_dir: Path, out_dir: Path) -> dict | None:
    c = cfg.slq
    job = open_job(cfg, comm)
    load_masters(job, checkpoint_dir)  # theta
    rows = split_rows(job.task, c.split, c.prompts, "slq.prompts")
    pool_ids = tasks.fixed_pool_ids(len(rows), c.prompts, c.pool_seed)
    pool = [rows[i] for i in pool_ids]
    n = job.perturbed.numel
    sink.say(job.banner("slq", f"operator {c.operator}, {c.probes} probes x {c.steps} Lanczos steps, "
                               f"{c.prompts} prompts, checkpoint {checkpoint_dir}"))
    t_start = time.perf_counter()
    if c.operator == "hvp":
        flat, stein_group = _hvp(cfg, job, pool, sink), None
    else:
        flat, stein_group = _stein(cfg, job, pool, sink, t_start)
    m = min(c.steps, n)
    sink.open(out_dir / c.file, dict(provenance(cfg, job), checkpoint=str(checkpoint_dir)), {},
              lambda f: _create_layout(f, c, n, m, pool_ids, stein_group))
    result, wall = _probes(c, comm, sink, flat, n, m)
    if not sink.active:
        return None
    summary = _store(sink, c, result, wall)
    return dict(summary, file=str(out_dir / c.file), steps=m, wall=time.perf_counter() - t_start)


def _hvp(cfg: Config, job, pool: list[dict], sink) -> FlatOperator:
    """The autograd Hessian of the mean answer-token cross-entropy at theta, the model cast to slq.dtype."""
    task, backend, perturbed = job.task, job.backend, job.perturbed
    refs = [task.reference_completion(r) for r in pool]
    if None in refs:
        raise ConfigError(f"slq.operator: hvp needs reference completions, which task {cfg.task.name!r} lacks")
    if not backend.in_process:
        raise ConfigError("slq.operator: hvp differentiates the model in this process; use generation.backend "
                          "transformers")
    dtype = DTYPES[cfg.slq.dtype]
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
        sink.say(f"surrogate: mean cross-entropy {float(op.loss(op.params)):.4f} over {op.tokens} answer tokens")
    return FlatOperator(op.matvec, [m.shape for m in perturbed.masters], backend.device, dtype)


def _stein(cfg: Config, job, pool: list[dict], sink, t_start: float) -> tuple[FlatOperator, tuple]:
    """The Stein estimator of the Hessian of J_sigma from M candidates' rewards on the pool (Appendix G.10), and
    the attributes and datasets of slq/stein (its exact spectrum from the M x M Gram matrix among them)."""
    c, perturbed, sigma, M = cfg.slq, job.perturbed, cfg.es.sigma, cfg.slq.candidates
    shapes, dtype = [m.shape for m in perturbed.masters], DTYPES[c.dtype]
    batch = job.backend.encode([job.task.prompt(r) for r in pool])
    reward0 = job.evaluator.mean(pool)
    seeds, signs = member_seeds(c.seed, 0, M, cfg.es.antithetic)
    rewards = np.zeros(M)
    chunk = 8 * job.comm.world_size
    for s in range(0, M, chunk):
        part = slice(s, min(s + chunk, M))
        rewards[part] = evaluate_over_ranks(job, seeds[part], signs[part], sigma, batch, pool, PhaseTimer())[0]
        sink.say(f"candidates {part.stop:4d}/{M}  J(theta) {reward0:.4f}  mean J(theta + sigma eps) "
                 f"{rewards[:part.stop].mean():.4f}  {time.perf_counter() - t_start:.1f}s")
    deltas = rewards - reward0

    def noise(i: int, t: int) -> torch.Tensor:
        return perturbed.noise.draw(int(seeds[i]), perturbed.indices[t], shapes[t]).mul_(float(signs[i]))

    stein = SteinHessian(noise, len(shapes), deltas, sigma, dtype)
    sink.say(f"stein: {int(np.count_nonzero(deltas))}/{M} candidates change the reward; shift {stein.shift:.4g}")
    attrs = dict(sigma=sigma, reward0=reward0, candidates=M, shift=stein.shift)
    data = {"seeds": seeds, "signs": signs, "rewards": rewards}
    if sink.active:  # rank 0 writes: the exact spectrum and the null's
        data["eigenvalues"] = stein.exact_spectrum()[0].numpy()
        if c.null_permutations:
            attrs["null_seed"] = np.int64(c.seed)
            data["null_eigenvalues"] = stein.null_spectra(null_permutations(c.seed, c.null_permutations, M)).numpy()
    return FlatOperator(stein.matvec, shapes, perturbed.masters[0].device, dtype), (attrs, data)


def null_permutations(seed: int, count: int, m: int) -> list[np.ndarray]:
    """The Stein null's permutations of the M candidates: number p from SeedSequence([seed, p]) (SCHEMA.md)."""
    return [np.random.default_rng(np.random.SeedSequence([seed, p])).permutation(m) for p in range(count)]


def _probes(c, comm, sink, flat: FlatOperator, n: int, m: int) -> tuple[SLQResult, np.ndarray]:
    """m Lanczos steps from each Rademacher probe, probes dealt over ranks, coefficients all-reduced; the result
    and each probe's seconds."""
    S = c.probes
    alpha, beta = np.zeros((S, m)), np.zeros((S, max(m - 1, 0)))
    length, norm2, wall = np.zeros(S), np.zeros(S), np.zeros(S)
    for j in comm.owned(S):
        t0 = time.perf_counter()
        z = draw_probe(n, c.seed, j)
        a, b = lanczos(flat, z, m)
        alpha[j, :len(a)], beta[j, :len(b)], length[j], norm2[j] = a, b, len(a), z @ z
        wall[j] = time.perf_counter() - t0
        nodes = np.linalg.eigvalsh(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))
        sink.say(f"probe {j:3d}/{S}  {len(a)} steps  Ritz values [{nodes[0]:.4g}, {nodes[-1]:.4g}]  {wall[j]:.1f}s")
    packed = comm.allreduce_sum(np.concatenate([alpha.ravel(), beta.ravel(), length, norm2, wall]))
    alpha, beta = packed[:S * m].reshape(S, m), packed[S * m:S * (2 * m - 1)].reshape(S, max(m - 1, 0))
    length, norm2, wall = (packed[S * (2 * m - 1) + k * S:S * (2 * m - 1) + (k + 1) * S] for k in range(3))
    k = length.astype(int)
    result = SLQResult(alpha=tuple(a[:kj] for a, kj in zip(alpha, k)),
                       beta=tuple(b[:kj - 1] for b, kj in zip(beta, k)), probe_norm2=norm2, n=n,
                       probe_dist="rademacher", seed=c.seed, operator=OPERATOR_TEXT[c.operator])
    return result, wall


def _store(sink, c, result: SLQResult, wall: np.ndarray) -> dict:
    """Rank 0: the coefficients into slq/, and the summary in the reward objective's sign, as python -m analysis.slq
    reports the file (the Stein operator's compared with its exact spectrum, beside its null band)."""
    f = sink.file
    g = f["slq"]
    for key, data in zip(("alpha", "beta"), padded_coefficients(result)):
        g[key].resize(data.shape[1], axis=1)
        g[key][...] = data
    g["probe_norm2"][...], g["wall"][...] = result.probe_norm2, wall
    stored = objective(f)
    reported = as_reward(result) if stored == "cross_entropy" else result
    summary = {"operator": c.operator, "n": result.n, "probes": c.probes, "objective_stored": stored,
               "sign_flipped": reported is not result, "summaries": reported.summaries()}
    if c.operator == "stein":
        exact, null = summaries(*read_exact(f)), read_null(f)
        summary["stein"] = {"reward0": float(f["slq/stein"].attrs["reward0"]), "exact": exact,
                            "relative_error": {key: abs(summary["summaries"][key] - v) / abs(v) if v else None
                                               for key, v in exact.items()},
                            "null_summaries": null_band(null) if null else None}
        sink.say("stein exact vs SLQ: " + "  ".join(f"{key} {v:.4g}/{summary['summaries'][key]:.4g}"
                                                    for key, v in exact.items()))
        if null:
            band = summary["stein"]["null_summaries"]
            sink.say(f"stein null ({len(null)} permutations of dR), 95% band: " + "  ".join(
                f"{key} [{band[key]['lo']:.4g}, {band[key]['hi']:.4g}]" for key in exact))
    f.flush()
    return summary


def _create_layout(f, c, n: int, m: int, pool_ids: np.ndarray, stein_group) -> None:
    """SCHEMA.md's slq/ group, waiting for the probes (alpha and beta without columns, probe_norm2 and wall NaN,
    until every probe has run), and for the Stein operator `stein_group` = (attributes, datasets) of slq/stein."""
    S = c.probes
    g = f.create_group("slq")
    g.attrs.update(n=np.int64(n), probe_dist="rademacher", operator=OPERATOR_TEXT[c.operator], seed=np.int64(c.seed),
                   kind=c.operator, objective=OBJECTIVE[c.operator], steps=c.steps, prompts=c.prompts,
                   pool_seed=c.pool_seed, split=c.split, dtype=c.dtype)
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
