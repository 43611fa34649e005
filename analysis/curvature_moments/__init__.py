"""Curvature moments of the reward from antithetic probes (issue 17 item 3; probe layout: analysis/best_of_n/SCHEMA.md).

Each candidate is evaluated at theta + sigma eps and theta - sigma eps. With dR+- the reward changes,
s = dR+ + dR- = sigma^2 eps^T H eps + O(sigma^4) and a = dR+ - dR- = 2 sigma g^T eps + O(sigma^3),
so tr H = E[s] / sigma^2, tr H^2 = Var(s) / (2 sigma^4), |g|^2 = Var(a) / (4 sigma^2) and the
effective dimension tr(H)^2 / tr(H^2). H is the reward's Hessian (negative definite at a maximum).
"""

import numpy as np

from analysis.hdf5 import open_file

QUANTITIES = ("tr_H", "tr_H2", "grad_sq", "eff_dim")
EXPONENTS = {"mean_s": 2.0, "var_s": 4.0, "var_a": 2.0}  # E[s] ~ sigma^2, Var(s) ~ sigma^4, Var(a) ~ sigma^2


def _stats(s, a, sigma):
    """The four moments from s and a along the last axis (rows: bootstrap replicates)."""
    tr_h = s.mean(axis=-1) / sigma**2
    tr_h2 = s.var(axis=-1, ddof=1) / (2.0 * sigma**4)
    grad_sq = a.var(axis=-1, ddof=1) / (4.0 * sigma**2)
    return dict(tr_H=tr_h, tr_H2=tr_h2, grad_sq=grad_sq, eff_dim=tr_h**2 / tr_h2)


def moments(plus, minus, sigma, reps=1000, level=0.95, rng=0):
    """tr H, tr H^2, |g|^2 and eff_dim from paired dR+ and dR- (NaN pairs dropped), with bootstrap
    percentile intervals over candidates; returns {name: {value, se, ci}} plus counts and the draws."""
    plus, minus = np.asarray(plus, dtype=float).ravel(), np.asarray(minus, dtype=float).ravel()
    keep = np.isfinite(plus) & np.isfinite(minus)
    s, a = plus[keep] + minus[keep], plus[keep] - minus[keep]
    if s.size < 3:
        raise ValueError(f"sigma={sigma:g}: {s.size} complete antithetic pairs, need at least 3")
    point = _stats(s, a, sigma)
    picks = np.random.default_rng(rng).integers(0, s.size, (reps, s.size))
    draws = _stats(s[picks], a[picks], sigma)
    tail = (1.0 - level) / 2
    out = {name: dict(value=float(point[name]), se=float(draws[name].std(ddof=1)),
                      ci=[float(q) for q in np.quantile(draws[name], [tail, 1.0 - tail])]) for name in QUANTITIES}
    out.update(sigma=float(sigma), pairs=int(s.size), mean_s=float(s.mean()), var_s=float(s.var(ddof=1)),
               var_a=float(a.var(ddof=1)))
    return out, draws


def _exponent(sigmas, points, raw_draws):
    """Weighted slope of log|X| against log sigma for a moment X (point values and bootstrap draws per
    sigma); returns (slope, se)."""
    x, y = np.log(sigmas), np.log(np.abs(points))
    se = np.array([np.log(np.abs(d[d != 0])).std(ddof=1) for d in raw_draws])
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    xm = np.sum(w * x) / np.sum(w)
    slope = np.sum(w * (x - xm) * y) / np.sum(w * (x - xm) ** 2)
    return float(slope), float(1.0 / np.sqrt(np.sum(w * (x - xm) ** 2)))


def _agrees(row, ref, z):
    """Whether tr H and tr H^2 of ``row`` match the reference sigma's within z combined standard errors."""
    return row is ref or all(abs(row[q]["value"] - ref[q]["value"]) <= z * np.hypot(row[q]["se"], ref[q]["se"])
                             for q in ("tr_H", "tr_H2"))


def scaling(per_sigma, draws, z=3.0):
    """The locality window: exponents of E[s], Var(s), Var(a) against sigma (expected 2, 4, 2) and, per
    sigma, whether tr H and tr H^2 agree with the smallest sigma's within z combined standard errors."""
    order = np.argsort([r["sigma"] for r in per_sigma])
    rows, draws = [per_sigma[i] for i in order], [draws[i] for i in order]
    sigmas = np.array([r["sigma"] for r in rows])
    report = dict(expected=EXPONENTS, exponents=None)
    if len(rows) >= 2:
        scale = {"mean_s": ("tr_H", sigmas**2), "var_s": ("tr_H2", 2 * sigmas**4), "var_a": ("grad_sq", 4 * sigmas**2)}
        report["exponents"] = {k: _exponent(sigmas, [r[k] for r in rows], [d[q] * c for d, c in zip(draws, factor)])
                               for k, (q, factor) in scale.items()}
    for r in rows:
        r["local"] = bool(_agrees(r, rows[0], z))
    report["local_sigmas"] = [r["sigma"] for r in rows if r["local"]]
    first_out = next((i for i, r in enumerate(rows) if not r["local"]), len(rows))
    report["window_sigma_max"] = rows[first_out - 1]["sigma"]
    return report


def read_probe(path):
    """Antithetic candidates of a probe file: (label, [(sigma, dR+, dR-)]) with all batches of a sigma pooled."""
    with open_file(path) as f:
        probe = f["probe"]
        if not bool(probe.attrs.get("antithetic", False)):
            raise ValueError(f"{path}: probe/ is not antithetic (attribute antithetic is not true)")
        label = str(f.attrs.get("model", path)).rstrip("/").split("/")[-1]
        by_sigma = {}
        for name, node in probe.items():
            if not name.startswith("sigma"):
                continue
            for block in node.values():
                sigma = float(block.attrs["sigma"])
                pair = (block["delta"][()], block["delta_minus"][()])
                by_sigma.setdefault(sigma, []).append(pair)
    return label, [(s, np.concatenate([p for p, _ in v]), np.concatenate([m for _, m in v]))
                   for s, v in sorted(by_sigma.items())]


def analyse(path, reps=1000):
    """Moments per sigma with bootstrap intervals and the scaling check, for one probe file (JSON-ready)."""
    label, blocks = read_probe(path)
    results = [moments(plus, minus, sigma, reps) for sigma, plus, minus in blocks]
    per_sigma = [r for r, _ in results]
    return dict(file=str(path), model=label, per_sigma=per_sigma, scaling=scaling(per_sigma, [d for _, d in results]))
