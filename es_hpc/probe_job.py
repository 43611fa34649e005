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
"""
from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from analysis.hdf5 import open_file

from . import comm as comm_mod, tasks
from .config import Config, ConfigError
from .h5log import H5Log
from .train import PhaseTimer, evaluate_members, open_job, provenance, split_rows

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
            stored = json.loads(f.attrs["config"])
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
    with ExitStack() as cleanup:
        comm = comm_mod.make(cfg.dist.backend)
        cleanup.callback(comm.close)
        return _run(cfg, Path(out_dir), comm, cleanup)


def _run(cfg: Config, out_dir: Path, comm, cleanup: ExitStack) -> dict | None:
    is_root = comm.rank == 0
    say = print if is_root else (lambda *a, **k: None)
    p = cfg.probe
    path = out_dir / p.file
    resuming = check_existing(path, cfg)  # every rank reads it (and raises the same error) before rank 0 writes
    comm.barrier()
    job = open_job(cfg, comm)
    task, backend, evaluator = job.task, job.backend, job.evaluator
    rows = split_rows(task, p.split, p.pool_size, "probe.pool_size")
    pool_ids = tasks.fixed_pool_ids(len(rows), p.pool_size, p.pool_seed)
    pool = [rows[i] for i in pool_ids]
    batch = backend.encode([task.prompt(r) for r in pool])
    sigmas = [float(s) for s in p.sigmas]
    S, M, P, W = p.batches, p.candidates, p.pool_size, comm.world_size

    def unperturbed() -> np.ndarray:
        """This rank's per-prompt rewards of the unperturbed weights on the whole pool (one generate, as for a
        candidate, so R0 and every R see the same batch)."""
        return evaluator.local_rewards(pool, batch)

    base = unperturbed()
    out_dir.mkdir(parents=True, exist_ok=True)
    differs, done = False, 0
    if is_root and resuming:
        with open_file(path) as old:
            differs = not np.array_equal(np.packbits(base >= 0.5), old["probe/baseline/bits"][()])
            done = sum(int(np.sum(~np.isnan(old[f"{block_name(i, s)}/reward"][()])))
                       for i in range(len(sigmas)) for s in range(S))
    if resuming and comm.allreduce_sum(np.array([differs]))[0]:  # every rank stops together
        raise ConfigError(f"--out: the unperturbed per-prompt rewards on the pool differ from the baseline stored in "
                          f"{path}; its candidates cannot be mixed with this run's")
    log = f = None
    if is_root:
        if resuming:
            log = H5Log(path, {}, DRIFT, resume_iteration=done)  # records `resumed_at` (candidates already stored)
        else:
            log = H5Log(path, provenance(cfg, job), DRIFT, lambda f: _create_layout(f, p, sigmas, pool_ids, base))
        cleanup.callback(log.close)
        f = log.f
    r0 = comm.allreduce_sum(np.array([f["probe/baseline/reward"][()] if is_root else 0.0]))[0]
    say(f"es_hpc probe: {W} rank(s) x {job.threads} thread(s), {job.perturbed.numel:,} perturbed parameters, "
        f"sigmas {sigmas}, S={S} M={M} P={P}, R0={r0:.4f}{' (resuming)' if resuming else ''}, file {path}")

    def drift_check(sigma_index: int, s: int, k: int, measured: np.ndarray | None = None) -> float:
        """Every rank's unperturbed reward (re-measured after its perturb/restore cycles unless `measured` is
        given) minus R0, appended to probe/drift; returns the largest |drift|."""
        mine = np.zeros(W)
        mine[comm.rank] = (unperturbed() if measured is None else measured).mean() - r0
        drift = comm.allreduce_sum(mine)
        if log:
            for rank, d in enumerate(drift):
                log.append("probe/drift", {"sigma_index": np.int64(sigma_index), "batch": np.int64(s),
                                           "candidate": np.int64(k), "rank": np.int64(rank), "delta": np.float64(d)})
        return float(np.abs(drift).max())

    worst_drift = drift_check(-1, -1, -1, base)  # ranks that disagree on R0 from the start
    t_start = time.perf_counter()
    evaluated = skipped = chunks = 0
    for i, sigma in enumerate(sigmas):
        for s in range(S):
            name = block_name(i, s)
            seeds = candidate_seeds(p.base_seed, i, s, M)
            stored = np.zeros(M)
            if is_root:
                stored = (~np.isnan(f[f"{name}/reward"][()])).astype(np.float64)
            pending = np.flatnonzero(comm.allreduce_sum(stored) == 0)  # rank 0's view, shared
            skipped += M - len(pending)
            for c in range(0, len(pending), W):
                t0 = time.perf_counter()
                ks = pending[c:c + W]
                timer = PhaseTimer()
                rewards, bits, tokens = evaluate_members(job, seeds[ks], np.ones(len(ks)), sigma, batch, pool, timer)
                mine = np.zeros(len(ks))  # this rank's tokens in its slot (it owns position rank of the chunk)
                if comm.rank < len(ks):
                    mine[comm.rank] = tokens
                summed = comm.allreduce_sum(np.concatenate([rewards, mine]))
                rewards, tokens = summed[:len(ks)], summed[len(ks):].astype(np.int64)
                bits = comm.reduce_sum_root(bits)
                chunks += 1
                drift = drift_check(i, s, int(ks[-1]) + 1) if p.drift_every and chunks % p.drift_every == 0 else None
                if drift is not None:
                    worst_drift = max(worst_drift, drift)
                if f is not None:
                    g = f[name]
                    g["delta"][ks] = rewards - r0
                    g["bits"][ks] = bits
                    g["tokens"][ks] = tokens
                    g["reward"][ks] = rewards  # last: a candidate counts as stored once its reward is there
                    f.flush()
                evaluated += len(ks)
                say(f"cand  sigma={sigma:g} batch={s} k={ks[0]}-{ks[-1]}  dR "
                    + " ".join(f"{d:+.4f}" for d in rewards - r0)
                    + (f"  drift {drift:.2g}" if drift is not None else "")
                    + f"  {time.perf_counter() - t0:.2f}s")
    wall = time.perf_counter() - t_start
    comm.barrier()  # leave together, once rank 0 has written the last chunk
    if not is_root:
        return None
    per_sigma = []
    for i, sigma in enumerate(sigmas):
        d = np.concatenate([f[f"{block_name(i, s)}/delta"][()] for s in range(S)])
        d = d[~np.isnan(d)]
        per_sigma.append({"sigma": sigma, "mean_delta": float(d.mean()), "p_improve": float(np.mean(d > 0)),
                          "max_delta": float(d.max())})
    return {"file": str(path), "baseline_reward": float(r0), "evaluated": evaluated, "skipped": skipped,
            "wall": wall, "candidates_per_minute": 60 * evaluated / wall if wall > 0 else None,
            "max_abs_drift": worst_drift, "sigmas": per_sigma}


def _create_layout(f: h5py.File, p, sigmas: list[float], pool_ids: np.ndarray, base: np.ndarray) -> None:
    """The probe/ group with every (sigma, batch) block pre-filled with NaN (SCHEMA.md), probe/drift aside."""
    M, nbytes = p.candidates, (p.pool_size + 7) // 8
    g = f.create_group("probe")
    g.attrs.update(sigmas=np.array(sigmas), batches=p.batches, candidates=M, pool_size=p.pool_size,
                   pool_seed=p.pool_seed, split=p.split, base_seed=p.base_seed, drift_every=p.drift_every)
    g.create_dataset("pool_ids", data=pool_ids)
    g.create_dataset("baseline/reward", data=np.float64(base.mean()))
    g.create_dataset("baseline/bits", data=np.packbits(base >= 0.5))
    for i, sigma in enumerate(sigmas):
        for s in range(p.batches):
            b = f.create_group(block_name(i, s))
            b.attrs.update(sigma=sigma, sigma_index=i, batch=s)
            b.create_dataset("seeds", data=candidate_seeds(p.base_seed, i, s, M))
            b.create_dataset("reward", data=np.full(M, np.nan))
            b.create_dataset("delta", data=np.full(M, np.nan))
            b.create_dataset("bits", data=np.zeros((M, nbytes), dtype=np.uint8))
            b.create_dataset("tokens", data=np.full(M, -1, dtype=np.int64))
