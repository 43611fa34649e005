"""The probe job: the paper's ES reward probe (Appendix G) on a fixed prompt pool, into HDF5.

A fixed pool of P prompts (G.3, `tasks.fixed_pool`) is encoded once. The unperturbed reward R0 and its
per-prompt bits are measured on the whole pool, then for every sigma and each of S batches, M candidates
theta + sigma u (G.4, Eq. 51) whose seeds are `integers(0, 2^31, M)` of an independent RNG stream of
`probe.base_seed` per (sigma, batch). Each candidate's reward on the whole pool, dR = R - R0 (Eq. 52) and its
per-prompt 0/1 rewards packed as bits are stored (G.5). Candidates are dealt over ranks in chunks of one per
rank; only the chunk's rewards (all-reduce) and bits (reduce to rank 0) cross the network. Every
`probe.drift_every` chunks each rank re-measures its unperturbed reward (restore fidelity). Rank 0 writes the
file (layout: analysis/best_of_n/SCHEMA.md), flushed after each chunk; rerunning the same command resumes,
skipping candidates already stored. `python -m analysis.best_of_n FILE` turns it into best-of-N curves.
With probe.antithetic every candidate is also evaluated at theta - sigma u (sign -1, the same seed), stored in
the `*_minus` datasets; s = dR+ + dR- and a = dR+ - dR- give the reward's curvature moments (tr H, tr H^2, |g|^2:
`python -m analysis.curvature_moments FILE`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np

from analysis.hdf5 import open_file

from .. import tasks
from ..config import Config, ConfigError, from_json
from ..eval.members import evaluate_over_ranks
from ..runtime.job import open_job, split_rows
from ..runtime.provenance import provenance
from ..runtime.run import run_job
from ..runtime.timing import PhaseTimer

# Config fields that change what a probe measures: an existing file must have been written with the same values.
SAME_SECTIONS = ("model", "task", "generation", "probe")
SAME_ES_KEYS = ("params", "master_device")
DRIFT = {"probe/drift": {"sigma_index": ((), np.int64), "batch": ((), np.int64), "candidate": ((), np.int64),
                         "rank": ((), np.int64), "delta": ((), np.float64)}}  # the appended table (SCHEMA.md)


def candidate_seeds(base_seed: int, sigma_index: int, batch: int, m: int) -> np.ndarray:
    """Seeds of batch `batch` at sigma number `sigma_index`: rng.integers(0, 2^31, M) (G.4) of the stream
    SeedSequence(base_seed).spawn key (sigma_index, batch), independent of every other (sigma, batch)."""
    rng = np.random.default_rng(np.random.SeedSequence(base_seed, spawn_key=(sigma_index, batch)))
    return rng.integers(0, 2**31, size=m, dtype=np.int64)


def block_name(sigma_index: int, batch: int) -> str:
    return f"probe/sigma{sigma_index}/batch{batch}"


def _relevant(config: dict) -> dict:
    """The parts of a config (as stored JSON) that must match for two probe runs to share a file."""
    out = {k: config.get(k) for k in SAME_SECTIONS}
    out.update({f"es.{k}": config.get("es", {}).get(k) for k in SAME_ES_KEYS})
    return out


def check_existing(path: Path, cfg: Config) -> bool:
    """True if `path` holds a probe of this configuration (to resume), False if absent; ConfigError otherwise."""
    if not path.exists():
        return False
    try:
        with open_file(path) as f:
            stored = json.loads(from_json(f.attrs["config"]).to_json())  # fields added since: their defaults
            complete = "probe/baseline/reward" in f
    except (OSError, KeyError, ValueError):
        raise ConfigError(f"--out: {path} exists but is not a readable probe file; "
                          "remove it or choose a new --out") from None
    if not complete:
        raise ConfigError(f"--out: {path} was left before its layout was written; remove it or choose a new --out")
    mine, theirs = _relevant(json.loads(cfg.to_json())), _relevant(stored)
    for section in mine:
        a, b = theirs[section], mine[section]
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            section, a, b = f"{section}.{key}", a.get(key), b.get(key)
        raise ConfigError(f"{section}: {path} was written with {a!r}, this run has {b!r}; rerun with the same "
                          "configuration to resume, or choose a new --out")
    return True


def run(cfg: Config, out_dir: Path) -> dict | None:
    """Probe every (sigma, batch, candidate) not yet stored; rank 0 returns a summary dict, the others None."""
    return run_job(cfg, _probe, Path(out_dir))


def _probe(cfg: Config, comm, sink, out_dir: Path) -> dict | None:
    p = cfg.probe
    path = out_dir / p.file
    resuming = check_existing(path, cfg)  # every rank reads it (and raises the same error) before rank 0 writes
    comm.barrier()
    job = open_job(cfg, comm)
    rows = split_rows(job.task, p.split, p.pool_size, "probe.pool_size")
    pool_ids = tasks.fixed_pool_ids(len(rows), p.pool_size, p.pool_seed)
    pool = [rows[i] for i in pool_ids]
    batch = job.backend.encode([job.task.prompt(r) for r in pool])
    base = job.evaluator.local_rewards(pool, batch)  # one generate on the whole pool, as for a candidate
    _open_file(cfg, job, sink, path, resuming, pool_ids, base)
    r0 = comm.allreduce_sum(np.array([sink.read("probe/baseline/reward") if sink.active else 0.0]))[0]
    sink.say(job.banner("probe", f"sigmas {list(p.sigmas)}, S={p.batches} M={p.candidates} P={p.pool_size}, "
                                 f"R0={r0:.4f}{' (resuming)' if resuming else ''}, file {path}"))
    drift = Drift(job, sink, pool, batch, r0)
    worst = drift.check(-1, -1, -1, base)  # ranks that disagree on R0 from the start
    t_start = time.perf_counter()
    evaluated = skipped = 0
    for i in range(len(p.sigmas)):
        for s in range(p.batches):
            done, left, worst_here = _block(cfg, job, sink, drift, i, s, pool, batch)
            evaluated, skipped, worst = evaluated + done, skipped + left, max(worst, worst_here)
    wall = time.perf_counter() - t_start
    if not sink.active:
        return None
    return {"file": str(path), "baseline_reward": float(r0), "evaluated": evaluated, "skipped": skipped,
            "wall": wall, "candidates_per_minute": 60 * evaluated / wall if wall > 0 else None,
            "max_abs_drift": worst, "sigmas": _per_sigma(sink.file, p)}


def _open_file(cfg: Config, job, sink, path: Path, resuming: bool, pool_ids: np.ndarray, base: np.ndarray) -> None:
    """Rank 0 creates the probe file, or reopens it to resume once every rank agrees that the unperturbed
    per-prompt rewards equal the stored baseline (candidates of other weights cannot be mixed in)."""
    p = cfg.probe
    differs, done = False, 0
    if sink.active and resuming:
        with open_file(path) as old:
            differs = not np.array_equal(np.packbits(base >= 0.5), old["probe/baseline/bits"][()])
            done = sum(int(np.sum(~np.isnan(old[f"{block_name(i, s)}/reward"][()])))
                       for i in range(len(p.sigmas)) for s in range(p.batches))
    if resuming and job.comm.allreduce_sum(np.array([differs]))[0]:  # every rank stops together
        raise ConfigError(f"--out: the unperturbed per-prompt rewards on the pool differ from the baseline stored in "
                          f"{path}; its candidates cannot be mixed with this run's")
    if resuming:
        sink.open(path, {}, DRIFT, resume_iteration=done)  # records `resumed_at` (candidates already stored)
    else:
        sink.open(path, provenance(cfg, job), DRIFT, lambda f: _create_layout(f, p, pool_ids, base))


class Drift:
    """Restore fidelity: every rank's unperturbed reward on the pool minus R0, appended to probe/drift."""

    def __init__(self, job, sink, pool: list[dict], batch, r0: float):
        self.job, self.sink, self.pool, self.batch, self.r0 = job, sink, pool, batch, r0
        self.chunks = 0

    def check(self, sigma_index: int, s: int, k: int, measured: np.ndarray | None = None) -> float:
        """Re-measure (unless `measured` is given) on every rank and record; returns the largest |drift|."""
        comm = self.job.comm
        mine = np.zeros(comm.world_size)
        if measured is None:
            measured = self.job.evaluator.local_rewards(self.pool, self.batch)
        mine[comm.rank] = measured.mean() - self.r0
        drift = comm.allreduce_sum(mine)
        for rank, d in enumerate(drift):
            self.sink.append("probe/drift", {"sigma_index": np.int64(sigma_index), "batch": np.int64(s),
                                             "candidate": np.int64(k), "rank": np.int64(rank), "delta": np.float64(d)})
        return float(np.abs(drift).max())

    def after_chunk(self, every: int, sigma_index: int, s: int, k: int) -> float | None:
        """A check every `every` chunks (0: never), else None."""
        self.chunks += 1
        return self.check(sigma_index, s, k) if every and self.chunks % every == 0 else None


def _block(cfg: Config, job, sink, drift: Drift, i: int, s: int, pool: list[dict], batch) -> tuple[int, int, float]:
    """Batch s at sigma number i: the candidates not yet stored, in chunks of one per rank, each chunk written and
    flushed as it ends. Returns (evaluated, skipped, largest |drift| seen)."""
    p, comm, name = cfg.probe, job.comm, block_name(i, s)
    sigma, seeds, W, M = p.sigmas[i], candidate_seeds(p.base_seed, i, s, p.candidates), comm.world_size, p.candidates
    stored = (~np.isnan(sink.read(f"{name}/reward"))).astype(np.float64) if sink.active else np.zeros(M)
    pending = np.flatnonzero(comm.allreduce_sum(stored) == 0)  # rank 0's view, shared
    worst = 0.0
    for c in range(0, len(pending), W):
        t0 = time.perf_counter()
        ks = pending[c:c + W]
        sides = {suffix: _side(job, seeds[ks], sign, sigma, batch, pool, drift.r0, suffix)
                 for suffix, sign in ((("_minus", -1.0),) if p.antithetic else ()) + (("", 1.0),)}
        d = drift.after_chunk(p.drift_every, i, s, int(ks[-1]) + 1)
        worst = max(worst, d or 0.0)
        # both sides, the plus side's reward last: a candidate counts as stored once its reward is there
        sink.write(name, ks, **{key: v for side in sides.values() for key, v in side.items()})
        sink.say(f"cand  sigma={sigma:g} batch={s} k={ks[0]}-{ks[-1]}  dR "
                 + "  ".join(" ".join(f"{x:+.4f}" for x in side[f"delta{suffix}"]) for suffix, side in
                             reversed(sides.items()))
                 + (f"  drift {d:.2g}" if d is not None else "") + f"  {time.perf_counter() - t0:.2f}s")
    return len(pending), M - len(pending), worst


def _side(job, seeds: np.ndarray, sign: float, sigma: float, batch, pool: list[dict], r0: float, suffix: str) -> dict:
    """One chunk of candidates at theta + sign sigma u(seed), one per rank: the block's columns of that side
    (delta, bits, tokens, reward, each name + suffix), in the order they are written, reward last."""
    rewards, tokens, _, bits = evaluate_over_ranks(job, seeds, np.full(len(seeds), sign), sigma, batch, pool,
                                                   PhaseTimer(), tokens_by_rank=True)
    return {f"delta{suffix}": rewards - r0, f"bits{suffix}": bits, f"tokens{suffix}": tokens[:len(seeds)],
            f"reward{suffix}": rewards}


def _per_sigma(f: h5py.File, p) -> list[dict]:
    """Mean dR, p(dR > 0) and max dR of the stored candidates at each sigma (antithetic: and the twins' mean dR-)."""
    out = []
    for i, sigma in enumerate(p.sigmas):
        d = np.concatenate([f[f"{block_name(i, s)}/delta"][()] for s in range(p.batches)])
        d = d[~np.isnan(d)]
        out.append({"sigma": sigma, "mean_delta": float(d.mean()), "p_improve": float(np.mean(d > 0)),
                    "max_delta": float(d.max())})
        if p.antithetic:  # with mean_delta: mean s = mean dR+ + mean dR- = sigma^2 tr H to leading order
            pair = np.concatenate([f[f"{block_name(i, s)}/delta_minus"][()] for s in range(p.batches)])
            out[-1]["mean_delta_minus"] = float(np.nanmean(pair))
    return out


def _create_layout(f: h5py.File, p, pool_ids: np.ndarray, base: np.ndarray) -> None:
    """The probe/ group with every (sigma, batch) block pre-filled with NaN (SCHEMA.md), probe/drift aside."""
    M, nbytes = p.candidates, (p.pool_size + 7) // 8
    g = f.create_group("probe")
    sigmas = list(p.sigmas)
    g.attrs.update(sigmas=np.array(sigmas), batches=p.batches, candidates=M, pool_size=p.pool_size,
                   pool_seed=p.pool_seed, split=p.split, base_seed=p.base_seed, drift_every=p.drift_every,
                   antithetic=p.antithetic)
    g.create_dataset("pool_ids", data=pool_ids)
    g.create_dataset("baseline/reward", data=np.float64(base.mean()))
    g.create_dataset("baseline/bits", data=np.packbits(base >= 0.5))
    for i, sigma in enumerate(sigmas):
        for s in range(p.batches):
            b = f.create_group(block_name(i, s))
            b.attrs.update(sigma=sigma, sigma_index=i, batch=s)
            b.create_dataset("seeds", data=candidate_seeds(p.base_seed, i, s, M))
            for suffix in ("", "_minus") if p.antithetic else ("",):
                b.create_dataset(f"reward{suffix}", data=np.full(M, np.nan))
                b.create_dataset(f"delta{suffix}", data=np.full(M, np.nan))
                b.create_dataset(f"bits{suffix}", data=np.zeros((M, nbytes), dtype=np.uint8))
                b.create_dataset(f"tokens{suffix}", data=np.full(M, -1, dtype=np.int64))
