"""One verdict per claim of the paper, from `measure.measure`: holds, does not hold, or inconclusive, with why.

The rules are fixed here, before any run, and stated in each row's `rule`; nothing is tuned per run.
"""
from __future__ import annotations

import numpy as np

from analysis.toy.figures import FIGURE3, example_peak

from .measure import TRAIN_SIGMA

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"
MARGIN = 4.0  # standard errors of a smoothed point by which a peak must stand above a curve's start and end


def _fmt(mean_ci) -> str:
    m, h = mean_ci
    return "n/a" if not np.isfinite(m) else f"{m:.3g}" if not np.isfinite(h) else f"{m:.3g} +- {h:.2g}"


def _row(row: dict, measured: str, verdict: str, why: str) -> dict:
    """The claim's row completed with what was measured, the verdict and why."""
    return {**row, "measured": measured, "verdict": verdict, "why": why}


def _over_sizes(row: dict, parts: list[str], ok: list[bool], whys: dict) -> dict:
    """A row whose rule must hold on every size: holds if on all, does not hold if on none, else inconclusive."""
    verdict = HOLDS if all(ok) else FAILS if not any(ok) else OPEN
    why = whys.get(verdict, "it holds on some sizes, not on others")
    return _row(row, "; ".join(parts), verdict, why)


def _best_sigma(size: dict) -> dict:
    """The sigma whose best-of-N (at the emphasis N) is largest: where the size's window is."""
    return max(size["sigmas"], key=lambda s: -np.inf if not np.isfinite(s["best"][0]) else s["best"][0])


def saturation(probe: dict) -> dict:
    """Fig. 6: best-of-N saturates by N ~ 30-40 (N90 <= 40) with no shift to larger N as the model grows."""
    rule = ("at each size's best sigma: N90 (mean over the S batches, 95% interval) <= 40 for every size, and the "
            "least-squares slope of the per-batch N90 against log10(parameters) not above 0 beyond its 95% interval")
    row = {"claim": "best-of-N saturates by N ~ 30-40, no shift to larger N with size", "figure": "Fig. 6",
           "rule": rule}
    if len(probe) < 2:
        return _row(row, "fewer than two sizes probed", OPEN, "no size axis")
    best = {k: _best_sigma(v) for k, v in probe.items()}
    x = np.concatenate([[np.log10(probe[k]["parameters"])] * len(b["n90_batches"]) for k, b in best.items()])
    y = np.concatenate([b["n90_batches"] for b in best.values()])
    keep = np.isfinite(y)
    measured = "; ".join(f"{k}: N90 {_fmt(b['n90'])} (sigma {b['sigma']:g}), q0.95 {b['q95_rel']:.3g}"
                         for k, b in best.items())
    if keep.sum() < 3 or len(set(x[keep])) < 2:
        return _row(row, measured, OPEN, "best-of-N_max <= 0 in most batches: no N90")
    slope, se = _slope(x[keep], y[keep])
    measured += f"; slope {slope:.3g} +- {1.96 * se:.2g} per decade"
    lo = [b["n90"][0] - b["n90"][1] for b in best.values() if np.isfinite(b["n90"][1])]
    hi = [b["n90"][0] + b["n90"][1] for b in best.values() if np.isfinite(b["n90"][1])]
    m = min(v["candidates"] for v in probe.values())
    if any(v > 40 for v in lo) or slope - 1.96 * se > 0:
        why = "an N90 above 40 beyond its interval" if any(v > 40 for v in lo) else "N90 grows with size"
        return _row(row, measured, FAILS, why)
    if len(hi) < len(best) or any(v > 40 for v in hi) or m < 120:
        why = f"M = {m} candidates per batch" if m < 120 else "an N90 interval reaches past 40"
        return _row(row, measured, OPEN, why)
    return _row(row, measured, HOLDS, "every N90 <= 40 and no upward trend with size")


def _slope(x, y) -> tuple[float, float]:
    """Least-squares slope of y on x and its standard error."""
    xm = x - x.mean()
    slope = float(xm @ (y - y.mean()) / (xm @ xm))
    resid = y - y.mean() - slope * xm
    return slope, float(np.sqrt(resid @ resid / max(len(x) - 2, 1) / (xm @ xm)))


def accessibility(probe: dict) -> dict:
    """Fig. 11: improving perturbations are accessible at small sigma: p(dR > 0) > 0 at sigma <= TRAIN_SIGMA."""
    rule = (f"for every size, some sigma <= {TRAIN_SIGMA:g} has p(dR > 0) with its 95% bootstrap interval above 0; "
            "E[dR] reported beside it")
    row = {"claim": "improving perturbations are accessible at small sigma", "figure": "Fig. 11", "rule": rule}
    if not probe:
        return _row(row, "no probe", OPEN, "no probe completed")
    parts, ok = [], []
    for k, v in probe.items():
        small = [s for s in v["sigmas"] if s["sigma"] <= TRAIN_SIGMA * (1 + 1e-9)]
        s = max(small, key=lambda s: s["p_improve"][1]) if small else None
        if s is None:
            ok.append(False)
            continue
        p, lo, hi = s["p_improve"]
        e, elo, ehi = s["mean_delta"]
        parts.append(f"{k} (sigma {s['sigma']:g}): p {p:.3f} [{lo:.3f}, {hi:.3f}], "
                     f"E[dR] {e:+.4f} [{elo:+.4f}, {ehi:+.4f}]")
        ok.append(lo > 0)
    return _over_sizes(row, parts, ok, {HOLDS: "every size has improving directions at small sigma",
                                        FAILS: "no size has a p(dR > 0) interval above 0 at small sigma"})


def window(probe: dict) -> dict:
    """Fig. 12: a locality window in sigma: best-of-N peaks inside the sigma grid, falling off on both sides."""
    rule = ("for every size, best-of-N (emphasis N) is largest at an interior sigma of the grid and exceeds both "
            "end sigmas' by more than their combined 95% half-widths")
    row = {"claim": "a locality window in sigma", "figure": "Fig. 12", "rule": rule}
    if not probe:
        return _row(row, "no probe", OPEN, "no probe completed")
    parts, states = [], []
    for k, v in probe.items():
        sig = v["sigmas"]
        b = _best_sigma(v)
        i = sig.index(b)
        parts.append(f"{k}: best at sigma {b['sigma']:g} (" + ", ".join(
            f"{s['sigma']:g}: {_fmt(s['best'])}" for s in sig) + ")")
        if i in (0, len(sig) - 1):
            states.append(FAILS)
            continue
        clear = all(b["best"][0] - e["best"][0] > np.nan_to_num(np.hypot(b["best"][1], e["best"][1]), nan=np.inf)
                    for e in (sig[0], sig[-1]))
        states.append(HOLDS if clear else OPEN)
    verdict = HOLDS if all(s == HOLDS for s in states) else FAILS if all(s == FAILS for s in states) else OPEN
    why = {HOLDS: "interior maximum on every size", FAILS: "the maximum sits at an end of the grid on every size",
           OPEN: "interior maximum not clear on every size (" + ", ".join(
               f"{k}: {s}" for k, s in zip(probe, states)) + ")"}[verdict]
    return _row(row, "; ".join(parts), verdict, why)


def toy_peaks(populations) -> dict:
    """Eq. 25's t_peak in the toy's Figure 3 setting for kappa = sigma^2/N (NaN: the toy has no peak at that N)."""
    with np.errstate(invalid="ignore"):  # no peak: Eq. 25's logarithm of a negative ratio
        return {n: float(example_peak(FIGURE3["sigma"] ** 2 / n)) for n in populations}


def rise_then_decay(train: dict) -> dict:
    """Fig. 1: under fixed hyperparameters the training reward rises, peaks and decays."""
    rule = (f"for every N: the smoothed training reward's peak exceeds its start and its end by more than {MARGIN:g} "
            "se "
            "(the maximum of a smoothed noisy curve sits about 1.5 se above its mean by chance), and comes before the "
            "last half-window")
    row = {"claim": "training reward rises, peaks and decays (fixed hyperparameters)", "figure": "Figs. 1, 10",
           "rule": rule}
    if not train:
        return _row(row, "no training run", OPEN, "no training run completed")
    parts, states = [], []
    for n, r in train.items():
        rise, fall = r["peak"] - r["start"], r["peak"] - r["final"]
        parts.append(f"N={n}: {r['start']:.3f} -> peak {r['peak']:.3f} at t={r['t_peak']} "
                     f"[{r['t_peak_range'][0]}, {r['t_peak_range'][1]}] -> {r['final']:.3f} at t={r['iterations']} "
                     f"(se {r['se']:.3f})")
        rose = rise > MARGIN * r["se"]
        if rose and fall > MARGIN * r["se"] and r["passed"]:
            states.append(HOLDS)
        else:  # no rise, or still rising at the end: inconclusive; a rise with no decay after the peak: fails
            states.append(FAILS if rose and r["passed"] else OPEN)
    verdict = HOLDS if all(s == HOLDS for s in states) else FAILS if FAILS in states else OPEN
    why = {HOLDS: "every N rises and then decays significantly",
           FAILS: "a run peaked but did not decay beyond noise",
           OPEN: "a run did not rise beyond noise or had not passed its peak"}[verdict]
    if verdict != HOLDS:
        why += " (" + ", ".join(f"N={n}: {s}" for n, s in zip(train, states)) + ")"
    return _row(row, "; ".join(parts), verdict, why)


def peak_shift(train: dict) -> dict:
    """Figs. 10 and Eq. 25: a larger N delays and raises the peak."""
    toy = toy_peaks(sorted(train) or (10, 20, 30))
    toy_text = ", ".join(f"N={n}: {'no peak' if not np.isfinite(t) else f'{t:.1f}'}" for n, t in toy.items())
    rule = ("between the smallest and the largest N: t_peak intervals ordered without overlap and peak heights "
            f"ordered by more than {MARGIN:g} combined se; the toy's Eq. 25 trend in its Figure 3 setting: {toy_text}")
    row = {"claim": "a larger N delays and raises the peak", "figure": "Fig. 10, Eq. 25", "rule": rule}
    if len(train) < 2:
        return _row(row, "fewer than two populations", OPEN, "no N axis")
    ns = sorted(train)
    a, b = train[ns[0]], train[ns[-1]]
    measured = "; ".join(f"N={n}: t_peak {train[n]['t_peak']} [{train[n]['t_peak_range'][0]}, "
                         f"{train[n]['t_peak_range'][1]}], peak {train[n]['peak']:.3f}" for n in ns)
    later = a["t_peak_range"][1] < b["t_peak_range"][0]
    earlier = b["t_peak_range"][1] < a["t_peak_range"][0]
    gap = MARGIN * np.hypot(a["se"], b["se"])
    higher, lower = b["peak"] - a["peak"] > gap, a["peak"] - b["peak"] > gap
    if not (a["passed"] and b["passed"]):
        return _row(row, measured, OPEN, "a run had not passed its peak")
    if later and higher:
        return _row(row, measured, HOLDS, f"N={ns[-1]} peaks later and higher than N={ns[0]}")
    if earlier or lower:
        what = " and ".join(w for w, c in (("earlier", earlier), ("lower", lower)) if c)
        return _row(row, measured, FAILS, f"N={ns[-1]} peaks {what} than N={ns[0]}")
    return _row(row, measured, OPEN, "the peaks' times or heights differ by less than their intervals")


def bulk_outliers(slq: dict) -> dict:
    """Fig. 17: the curvature spectrum is a bulk with a few stiff outliers."""
    rule = ("for every size (hvp SLQ of the answer cross-entropy at the pretrained weights): max|lambda| >= 10 x "
            "the bulk edge (90% quantile of |lambda|) in every probe, and the mass beyond max|lambda|/10 <= 1%")
    row = {"claim": "curvature spectrum: a bulk with a few stiff outliers", "figure": "Fig. 17", "rule": rule}
    if not slq:
        return _row(row, "no spectrum", OPEN, "no SLQ run completed")
    parts = [f"{k}: max|lambda| {v['lambda_abs_max']:.3g}, bulk edge {v['bulk']:.3g}, ratio {v['ratio']:.3g} "
             f"[{v['ratio_range'][0]:.3g}, {v['ratio_range'][1]:.3g} over {v['probes']} probes], "
             f"stiff mass {v['stiff_fraction']:.2g}" for k, v in slq.items()]
    ok = [v["ratio_range"][0] >= 10 and v["stiff_fraction"] <= 0.01 for v in slq.values()]
    return _over_sizes(row, parts, ok, {HOLDS: "every size: stiff outliers far above a bulk that holds almost all "
                                        "the mass", FAILS: "no size separates outliers from the bulk by 10x"})


def all_claims(m: dict) -> list[dict]:
    """The report's table, in the paper's order."""
    return [saturation(m["probe"]), accessibility(m["probe"]), window(m["probe"]), rise_then_decay(m["train"]),
            peak_shift(m["train"]), bulk_outliers(m["slq"])]
