"""Step (2) of Algorithm 2: the weighted line through the plateaus, with errors that hold for few seeds.

The gap g(N) = J_ref - J_inf(N) shares J_ref's error across all N; that common term lies in the
intercept's direction, so fitting g = S kappa + b with each plateau's own error gives the slope and
chi^2 of the exact covariance. Plateau errors are estimated from R seeds (R - 1 degrees of
freedom), so the chi^2 reference distribution and the slope's spread are taken from a parametric
bootstrap that redraws both the plateaus and their estimated variances.
"""

import numpy as np
from scipy import stats

BOOTSTRAP = 4000  # parametric bootstrap draws (fixed seed: a fit is reproducible)


def slope_fit(kappa, gap, stderr):
    """Weighted least squares gap = S kappa + b with weights 1 / stderr^2; returns S, b, se(S), chi^2.

    Every stderr must be finite and positive (ValueError otherwise): unknown errors are pooled or
    FAILed by the caller (:func:`pool_stderr`), never replaced by unit weights.
    """
    stderr = np.asarray(stderr, dtype=float)
    if not np.all(np.isfinite(stderr) & (stderr > 0)):
        raise ValueError(f"slope_fit needs finite positive standard errors, got {stderr}")
    weights = 1.0 / stderr**2
    design = np.column_stack([kappa, np.ones_like(kappa)])
    normal = design.T @ (weights[:, None] * design)
    slope, intercept = np.linalg.solve(normal, design.T @ (weights * gap))
    chi2 = float(np.sum(weights * (gap - slope * kappa - intercept) ** 2))
    return float(slope), float(intercept), float(np.sqrt(np.linalg.inv(normal)[0, 0])), chi2


def pool_stderr(stderr, counts, labels, values):
    """Replace zero or missing standard errors by the dof-weighted pooled seed variance of the others.

    An error within rounding of its value (64 ulp) counts as zero. Returns (stderr, pooled labels,
    reason); reason is None, or the FAIL reason when no population has a usable error to pool from.
    """
    stderr, counts = np.asarray(stderr, dtype=float), np.asarray(counts, dtype=float)
    resolution = 64 * np.finfo(float).eps * np.maximum(np.abs(np.asarray(values, dtype=float)), np.finfo(float).tiny)
    good = np.isfinite(stderr) & (stderr > resolution)
    if good.all():
        return stderr, [], None
    if not good.any():
        return stderr, [], ("no population has a nonzero plateau standard error (every seed of every "
                            "population gave the same plateau): the slope's error is unknown")
    dof = counts[good] - 1
    pooled_var = np.sum(dof * counts[good] * stderr[good] ** 2) / np.sum(dof)
    out = np.where(good, stderr, np.sqrt(pooled_var / counts))
    return out, [label for label, ok in zip(labels, good) if not ok], None


def _batch_fit(kappa, gaps, variances):
    """slope_fit over rows of gaps (B, P) with variances (B, P); returns slopes and chi^2, each (B,)."""
    w = 1.0 / variances
    sw, sk, skk = w.sum(1), (w * kappa).sum(1), (w * kappa**2).sum(1)
    sg, skg = (w * gaps).sum(1), (w * kappa * gaps).sum(1)
    det = sw * skk - sk**2
    slope = (sw * skg - sk * sg) / det
    intercept = (skk * sg - sk * skg) / det
    chi2 = np.sum(w * (gaps - slope[:, None] * kappa - intercept[:, None]) ** 2, axis=1)
    return slope, chi2


def satterthwaite_dof(kappa, stderr, counts):
    """Welch-Satterthwaite degrees of freedom of the slope's variance sum_i c_i^2 se_i^2 (se_i with R_i - 1 dof)."""
    kappa, var = np.asarray(kappa, dtype=float), np.asarray(stderr, dtype=float) ** 2
    w = 1.0 / var
    centred = kappa - np.sum(w * kappa) / np.sum(w)
    terms = (w * centred) ** 2 * var  # c_i^2 se_i^2 of S = sum_i c_i g_i
    return float(np.sum(terms) ** 2 / np.sum(terms**2 / np.maximum(np.asarray(counts, dtype=float) - 1, 1)))


def bootstrap(kappa, stderr, counts, slope, intercept, level):
    """Parametric bootstrap of the fit with estimated plateau variances (R_i - 1 dof each).

    Returns (half-width of the slope's ``level`` interval, mean chi^2, the draws' chi^2 array); the
    half-width is widened by t / z at the Satterthwaite dof, since the errors' scale is itself estimated.
    """
    rng = np.random.default_rng(0)
    kappa, stderr = np.asarray(kappa, dtype=float), np.asarray(stderr, dtype=float)
    dof = np.maximum(np.asarray(counts, dtype=float) - 1, 1)
    gaps = slope * kappa + intercept + stderr * rng.standard_normal((BOOTSTRAP, kappa.size))
    variances = stderr**2 * rng.chisquare(dof, (BOOTSTRAP, kappa.size)) / dof
    slopes, chi2 = _batch_fit(kappa, gaps, variances)
    widen = stats.t.ppf(0.5 + level / 2, satterthwaite_dof(kappa, stderr, counts)) / stats.norm.ppf(0.5 + level / 2)
    return float(np.quantile(np.abs(slopes - slope), level) * widen), float(chi2.mean()), chi2
