"""Best-of-N accessibility from stored reward-probe candidates (paper Section 5, Appendix G.6-G.9).

Reads the probe/ group of SCHEMA.md. Point estimates use the full fixed pool only; uncertainty comes from
the S perturbation batches (best-of-N, G.6) or a bootstrap over candidates (p(dR > 0), E[dR], G.7); the
prompt bootstrap from the stored bits is a robustness check, reported separately.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from math import comb
from pathlib import Path

import numpy as np

from analysis.hdf5 import open_file

DEFAULT_NS = (5, 10, 20, 30, 50)


def expected_best_of_n(deltas, n: int) -> float:
    """E[max of n candidates drawn without replacement] from the order statistics, exactly (Eq. 53):
    with x_(1) <= ... <= x_(M), sum_j x_(j) C(j-1, n-1) / C(M, n). NaN entries (not yet probed) are dropped."""
    x = np.sort(np.asarray(deltas, dtype=np.float64).ravel())
    x = x[~np.isnan(x)]
    m = len(x)
    if not 1 <= n <= m:
        raise ValueError(f"best-of-{n} needs 1 <= n <= M, and M = {m}")
    total = comb(m, n)
    weights = np.array([comb(j - 1, n - 1) / total for j in range(n, m + 1)])  # exact integers, one rounding
    return float(np.dot(weights, x[n - 1:]))


def mc_best_of_n(deltas, n: int, subsets: int = 2000, rng=None) -> tuple[float, float]:
    """Monte Carlo version of expected_best_of_n (the paper's G.6 procedure): mean of max over `subsets` random
    subsets of size n without replacement, and its standard error."""
    x = np.asarray(deltas, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if not 1 <= n <= len(x):
        raise ValueError(f"best-of-{n} needs 1 <= n <= M, and M = {len(x)}")
    rng = np.random.default_rng(rng)
    picks = np.argsort(rng.random((subsets, len(x))), axis=1)[:, :n]  # uniform n-subsets
    maxima = x[picks].max(axis=1)
    return float(maxima.mean()), float(maxima.std(ddof=1) / np.sqrt(subsets))


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (ddof=1) of per-batch values; SE is NaN for a single batch."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def bootstrap(values, stat, reps: int = 1000, rng=None) -> dict:
    """Bootstrap of stat(values) resampling values with replacement: point estimate, SE and 95% percentile CI."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(rng)
    reps_ = np.array([stat(v[rng.integers(0, len(v), len(v))]) for _ in range(reps)])
    lo, hi = np.quantile(reps_, [0.025, 0.975])
    return {"value": float(stat(v)), "se": float(reps_.std(ddof=1)), "ci": [float(lo), float(hi)]}


def n90(ns, curve) -> float:
    """Saturation population (G.9): the smallest N with curve(N) >= 0.9 curve(N_max); NaN if curve(N_max) <= 0."""
    ns, curve = np.asarray(ns), np.asarray(curve, dtype=np.float64)
    top = curve[np.argmax(ns)]
    if not top > 0:
        return float("nan")
    return float(ns[curve >= 0.9 * top].min())


def headroom(r0: float) -> float:
    """1 - R0 (G.8, Eq. 54); NaN when the baseline is already perfect."""
    return 1.0 - r0 if r0 < 1 else float("nan")


@dataclass
class Probe:
    """One probe file: the baseline, and per sigma the (S, M) deltas and (S, M, P) per-prompt rewards."""

    path: str
    label: str
    parameters: int
    r0: float
    base_bits: np.ndarray  # (P,) uint8 0/1
    sigmas: list
    deltas: list  # per sigma, (S, M) float64, NaN = not probed
    bits: list  # per sigma, (S, M, P) uint8 0/1
    drift: np.ndarray = field(default_factory=lambda: np.zeros(0))  # probe/drift/delta


def read_probe(path, label: str | None = None) -> Probe:
    """Load the probe/ group of a file (SCHEMA.md)."""
    with open_file(path) as f:
        if "probe" not in f:
            raise ValueError(f"{path}: no probe/ group (is this a `python -m es_hpc probe` file?)")
        g = f["probe"]
        P, S = int(g.attrs["pool_size"]), int(g.attrs["batches"])
        sigmas = [float(s) for s in g.attrs["sigmas"]]
        deltas, bits = [], []
        for i in range(len(sigmas)):
            blocks = [g[f"sigma{i}/batch{s}"] for s in range(S)]
            # a candidate is stored once its reward is (written last: a running probe may show its delta first)
            deltas.append(np.stack([np.where(np.isnan(b["reward"][()]), np.nan, b["delta"][()]) for b in blocks]))
            bits.append(np.stack([np.unpackbits(b["bits"][()], axis=-1, count=P) for b in blocks]))
        model = str(f.attrs.get("model", path))
        return Probe(path=str(path), label=label or Path(model.rstrip("/")).name,
                     parameters=int(f.attrs.get("perturbed_parameters", 0)), r0=float(g["baseline/reward"][()]),
                     base_bits=np.unpackbits(g["baseline/bits"][()], count=P), sigmas=sigmas, deltas=deltas,
                     bits=bits, drift=g["drift/delta"][()] if "drift/delta" in g else np.zeros(0))


def best_of_n_curve(deltas, ns, r0: float) -> dict:
    """Per N: exact best-of-N per batch, mean over batches and 1.96 SE (G.6), raw and over (1 - R0) (G.8)."""
    h = headroom(r0)
    rows = []
    for n in ns:
        per_batch = [expected_best_of_n(d, n) for d in deltas]
        mean, se = mean_se(per_batch)
        rows.append({"N": int(n), "best": mean, "se": se, "ci95": 1.96 * se,
                     "best_rel": mean / h, "se_rel": se / h, "per_batch": per_batch})
    return rows


def prompt_bootstrap(probe: Probe, i: int, ns, emphasis: int, reps: int = 200, rng=None) -> dict:
    """Robustness check (G.6, appendix only): resample the P prompts with replacement, recompute R0, every
    candidate's dR and the statistics; report their replicate mean and 95% interval (not point estimates)."""
    rng = np.random.default_rng(rng)
    P = len(probe.base_bits)
    counts = np.stack([np.bincount(rng.integers(0, P, P), minlength=P) for _ in range(reps)]).T  # (P, B)
    S, M = probe.deltas[i].shape
    # integer counts keep the sums exact, so a candidate equal to the baseline on the drawn prompts has dR = 0
    cand = (probe.bits[i].reshape(S * M, P).astype(np.int64) @ counts) / P  # (S*M, B) resampled rewards
    r0 = (probe.base_bits.astype(np.int64) @ counts) / P  # (B,)
    d = (cand - r0).reshape(S, M, reps)
    d[np.isnan(probe.deltas[i])] = np.nan
    out = {}
    for name, values in {
        "p_improve": [np.nanmean(d[..., b] > 0) if np.any(~np.isnan(d[..., b])) else np.nan for b in range(reps)],
        "mean_delta": [np.nanmean(d[..., b]) for b in range(reps)],
        f"best_of_{emphasis}_rel": [np.mean([expected_best_of_n(d[s, :, b], emphasis) for s in range(S)])
                                    / headroom(r0[b]) for b in range(reps)],
    }.items():
        v = np.asarray(values, dtype=np.float64)
        lo, hi = np.nanquantile(v, [0.025, 0.975])
        out[name] = {"mean": float(np.nanmean(v)), "ci": [float(lo), float(hi)]}
    out["replicates"] = reps
    return out


def analyse(probe: Probe, ns=DEFAULT_NS, emphasis: int = 30, candidate_reps: int = 1000,
            prompt_reps: int = 200, seed: int = 0) -> dict:
    """Every statistic of one file, per sigma (G.6-G.9)."""
    rng = np.random.default_rng(seed)
    m = min(int(np.sum(~np.isnan(d[s]))) for d in probe.deltas for s in range(d.shape[0]))
    ns = [n for n in ns if n <= m]
    if not ns:
        raise ValueError(f"{probe.path}: every N exceeds the {m} candidates probed per batch")
    emphasis = emphasis if emphasis in ns else max(ns)  # e.g. best-of-30 needs M >= 30
    h = headroom(probe.r0)
    sigmas = []
    for i, sigma in enumerate(probe.sigmas):
        d = probe.deltas[i]
        flat = d[~np.isnan(d)]
        curve = best_of_n_curve([row[~np.isnan(row)] for row in d], ns, probe.r0)
        rel = flat / h
        sigmas.append({
            "sigma": sigma, "candidates": int(flat.size), "batches": int(d.shape[0]),
            "curve": curve,
            f"best_of_{emphasis}": next(r for r in curve if r["N"] == emphasis),
            "p_improve": bootstrap(flat, lambda v: np.mean(v > 0), candidate_reps, rng),
            "mean_delta": bootstrap(flat, np.mean, candidate_reps, rng),
            "n90": n90(ns, [r["best"] for r in curve]),
            "q95_rel": float(np.quantile(rel, 0.95)),
            "prompt_bootstrap": prompt_bootstrap(probe, i, ns, emphasis, prompt_reps, rng),
        })
    return {"file": probe.path, "label": probe.label, "parameters": probe.parameters, "r0": probe.r0,
            "pool_size": int(len(probe.base_bits)), "ns": ns, "emphasis": emphasis,
            "max_abs_drift": float(np.abs(probe.drift).max()) if probe.drift.size else None, "sigmas": sigmas}


def to_json(results: list[dict]) -> str:
    """Results as strict JSON (NaN becomes null)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return None if isinstance(x, float) and x != x else x
    return json.dumps(clean(results), indent=1)


def write_tables(results: list[dict], out: Path) -> list[Path]:
    """best_of_n.csv (one row per file, sigma, N), summary.csv (one row per file, sigma) and best_of_n.json."""
    out.mkdir(parents=True, exist_ok=True)
    curve_lines = ["model,parameters,sigma,r0,N,best_of_n,se,ci95,best_of_n_rel,se_rel"]
    summary_lines = ["model,parameters,sigma,r0,candidates,p_improve,p_improve_lo,p_improve_hi,mean_delta,"
                     "mean_delta_lo,mean_delta_hi,best_of_e,best_of_e_rel,ci95_rel,emphasis,n90,q95_rel,"
                     "prompt_boot_p_improve_lo,prompt_boot_p_improve_hi"]
    for r in results:
        for s in r["sigmas"]:
            for c in s["curve"]:
                curve_lines.append(f"{r['label']},{r['parameters']},{s['sigma']:g},{r['r0']:.6g},{c['N']},"
                                   f"{c['best']:.6g},{c['se']:.6g},{c['ci95']:.6g},{c['best_rel']:.6g},{c['se_rel']:.6g}")
            b, pi, md = s[f"best_of_{r['emphasis']}"], s["p_improve"], s["mean_delta"]
            pb = s["prompt_bootstrap"]["p_improve"]["ci"]
            summary_lines.append(
                f"{r['label']},{r['parameters']},{s['sigma']:g},{r['r0']:.6g},{s['candidates']},{pi['value']:.6g},"
                f"{pi['ci'][0]:.6g},{pi['ci'][1]:.6g},{md['value']:.6g},{md['ci'][0]:.6g},{md['ci'][1]:.6g},"
                f"{b['best']:.6g},{b['best_rel']:.6g},{1.96 * b['se_rel']:.6g},{r['emphasis']},{s['n90']:g},"
                f"{s['q95_rel']:.6g},{pb[0]:.6g},{pb[1]:.6g}")
    paths = [out / "best_of_n.csv", out / "summary.csv", out / "best_of_n.json"]
    paths[0].write_text("\n".join(curve_lines) + "\n")
    paths[1].write_text("\n".join(summary_lines) + "\n")
    paths[2].write_text(to_json(results))
    return paths


__all__ = ["DEFAULT_NS", "Probe", "analyse", "best_of_n_curve", "bootstrap", "expected_best_of_n", "headroom",
           "mc_best_of_n", "mean_se", "n90", "prompt_bootstrap", "read_probe", "to_json", "write_tables"]
