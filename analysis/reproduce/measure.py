"""The measurements behind each claim of docs/reproduction.md, from the files `launch/reproduce.sh` wrote.

Every interval is a 95% one: 1.96 standard errors across the S probe batches, bootstrap percentiles over
candidates (analysis.best_of_n), or the spread of a smoothed training curve as stated where it is used.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis import best_of_n as bon
from analysis import curvature_moments as cm
from analysis.hdf5 import complete_rows, open_file
from analysis.slq.store import objective, read_slq

SIZES = ("xs", "s", "m", "l")
POPULATIONS = (10, 20, 30)
NS = tuple(range(1, 51))  # best-of-N for N = 1 .. 50 (Fig. 6)
EMPHASIS = 30  # the N of the sigma window (Fig. 12)
TRAIN_SIGMA = 3e-3  # the sigma the family is trained with (configs/tiny.yaml): the "small sigma" of Fig. 11


def sizes_present(run: Path, prefix: str) -> list[str]:
    """The family sizes whose stage PREFIX-SIZE completed (its .done marker), in size order."""
    return [s for s in SIZES if (run / f"{prefix}-{s}" / ".done").is_file()]


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of its 95% interval (1.96 standard errors) of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def batch_curves(curve: list[dict], r0: float) -> np.ndarray:
    """(S, len(ns)) headroom-normalised best-of-N of every batch (Eqs. 53-54), from the per-batch values of
    analysis.best_of_n's curve rows (one row per N)."""
    return np.array([row["per_batch"] for row in curve], dtype=float).T / bon.headroom(r0)


def probe_size(path: Path) -> dict:
    """Best-of-N, N90, q0.95, p(dR > 0), E[dR] of one size at every sigma (G.6-G.9), with batch intervals."""
    probe = bon.read_probe(str(path))
    m = min(int(np.sum(~np.isnan(row))) for d in probe.deltas for row in d)
    ns = [n for n in NS if n <= m]
    stats = bon.analyse(probe, ns=ns, emphasis=min(EMPHASIS, max(ns)), candidate_reps=1000, prompt_reps=50)
    out = {"parameters": probe.parameters, "r0": probe.r0, "candidates": m, "batches": probe.deltas[0].shape[0],
           "pool": stats["pool_size"], "ns": ns, "emphasis": stats["emphasis"], "max_abs_drift": stats["max_abs_drift"],
           "sigmas": []}
    for s in stats["sigmas"]:
        curves = batch_curves(s["curve"], probe.r0)
        n90s = [bon.n90(ns, c) for c in curves]
        k = ns.index(stats["emphasis"])
        out["sigmas"].append({
            "sigma": s["sigma"], "curve": np.nanmean(curves, axis=0).tolist(),
            "best": mean_ci(curves[:, k]), "n90": mean_ci(n90s), "n90_batches": n90s,
            "n90_pooled": s["n90"], "q95_rel": s["q95_rel"],
            "p_improve": (s["p_improve"]["value"], *s["p_improve"]["ci"]),
            "mean_delta": (s["mean_delta"]["value"], *s["mean_delta"]["ci"]),
        })
    return out


def moments_size(path: Path) -> dict:
    """Antithetic curvature moments of one size (analysis.curvature_moments), or the reason they are not defined."""
    try:
        return cm.analyse(str(path), reps=500)
    except (ValueError, FloatingPointError, ZeroDivisionError) as exc:
        return {"error": str(exc)}


def smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of odd `width`, shrinking at the ends (no padding values invented)."""
    h = width // 2
    return np.array([y[max(0, i - h):i + h + 1].mean() for i in range(len(y))])


def rise_decay(path: Path) -> dict:
    """Training reward on the fixed set (population mean per iteration) smoothed, its peak and decay (Figs. 1, 10).

    se is the standard error of a smoothed point: the residuals' standard deviation / sqrt(width). The peak's
    interval is the range of iterations whose smoothed reward is within one se of the maximum.
    """
    with open_file(path) as f:
        train = complete_rows(f["train"], ("iteration", "rewards"))
        ev = complete_rows(f["eval"], ("iteration", "reward"))
        cfg = json.loads(f.attrs["config"])
    t, y = train["iteration"].astype(int), train["rewards"].mean(axis=1)
    width = max(3, (len(y) // 10) | 1)
    ys = smooth(y, width)
    se = float(np.std(y - ys, ddof=1) / np.sqrt(width))
    k = int(np.argmax(ys))
    near = t[ys >= ys[k] - se]
    h = width // 2
    return {"population": cfg["es"]["population"], "iterations": int(t[-1]), "width": width, "se": se,
            "t": t.tolist(), "raw": y.tolist(), "smooth": ys.tolist(),
            "t_peak": int(t[k]), "t_peak_range": [int(near.min()), int(near.max())], "peak": float(ys[k]),
            "start": float(ys[h]), "final": float(ys[-1 - h]), "passed": bool(t[k] < t[-1 - h]),
            "eval_t": ev["iteration"].astype(int).tolist(), "eval": ev["reward"].astype(float).tolist(),
            "sigma": cfg["es"]["sigma"], "alpha": cfg["es"]["alpha"], "train_rows": cfg["task"]["options"]}


def spectrum(path: Path) -> dict:
    """The hvp SLQ measure of one size (Fig. 17) and its bulk/outlier summary, per probe and pooled.

    bulk = the 90% quantile of |lambda| under the spectral measure (the bulk's edge), ratio = max|lambda| / bulk,
    stiff_fraction = the measure's mass at |lambda| > max|lambda| / 10 over its total (a count fraction of D).
    """
    with open_file(path) as f:
        result = read_slq(f)
        obj = objective(f)
    nodes, weights = result.measure()
    per_probe = [_bulk_outliers(t, w) for t, w in result.quadrature]
    return {"objective": obj, "n": result.n, "probes": len(result.quadrature), "nodes": nodes.tolist(),
            "weights": weights.tolist(), **_bulk_outliers(nodes, weights),
            "ratio_range": [min(p["ratio"] for p in per_probe), max(p["ratio"] for p in per_probe)]}


def _bulk_outliers(nodes, weights) -> dict:
    """bulk edge, max |lambda|, their ratio and the stiff fraction of one quadrature (see `spectrum`)."""
    a, w = np.abs(np.asarray(nodes)), np.asarray(weights)
    order = np.argsort(a)
    cum = np.cumsum(w[order]) / w.sum()
    bulk = float(a[order][np.searchsorted(cum, 0.9)])
    top = float(a.max())
    return {"bulk": bulk, "lambda_abs_max": top, "ratio": top / bulk if bulk > 0 else float("inf"),
            "stiff_fraction": float(w[a > top / 10].sum() / w.sum())}


def stage_times(run: Path) -> list[tuple[str, float, str]]:
    """(stage, seconds, plan) of every completed stage, from DIR/stages.tsv (the newest record of each)."""
    f = run / "stages.tsv"
    rows = {}
    for line in f.read_text().splitlines() if f.is_file() else []:
        name, seconds, plan = line.split("\t")
        rows[name] = (name, float(seconds), plan)
    return list(rows.values())


def measure(run: Path) -> dict:
    """Every measurement of the run directory, by experiment."""
    return {
        "probe": {s: probe_size(run / f"probe-{s}" / "probe.h5") for s in sizes_present(run, "probe")},
        "moments": {s: moments_size(run / f"moments-{s}" / "probe.h5") for s in sizes_present(run, "moments")},
        "train": {n: rise_decay(run / f"train-N{n}" / "es_log.h5") for n in POPULATIONS
                  if (run / f"train-N{n}" / ".done").is_file()},
        "slq": {s: spectrum(run / f"slq-{s}" / "slq.h5") for s in sizes_present(run, "slq")},
        "stages": stage_times(run),
        "plan": (run / "plan").read_text().strip() if (run / "plan").is_file() else "unknown",
    }
