"""The antithetic curvature-moment estimator (analysis.curvature_moments) on J of Eq. 13, against exact values."""

import numpy as np

from ..curvature_moments import QUANTITIES, moments
from . import closed_forms as cf
from .simulate import quadratic_reward


def exact_moments(lam, theta0):
    """Exact tr H, tr H^2, |g|^2 and tr(H)^2 / tr(H^2) of J = 1 - theta^T C theta / 2 (H = -C) at theta0."""
    lam = np.asarray(lam, dtype=float)
    tr_h, tr_h2 = -lam.sum(), np.sum(lam**2)
    return dict(tr_H=tr_h, tr_H2=tr_h2, grad_sq=float(np.sum((lam * theta0) ** 2)), eff_dim=tr_h**2 / tr_h2)


def two_block_moments(dim, stiff, lam_hi, lam_lo, sigma, candidates, seed=0, reps=1000):
    """Antithetic probes of M candidates at theta0 ~ N(0, I / D) (a point with a gradient); JSON-ready report
    with each estimate, its bootstrap interval and the exact value."""
    rng = np.random.default_rng(seed)
    lam = cf.two_block_spectrum(dim, stiff, lam_hi, lam_lo)
    theta0 = rng.standard_normal(dim) / np.sqrt(dim)
    reward = quadratic_reward(lam)
    eps = rng.standard_normal((candidates, dim))
    r0 = reward(theta0)
    est, _ = moments(reward(theta0 + sigma * eps) - r0, reward(theta0 - sigma * eps) - r0, sigma, reps, rng=seed)
    exact = exact_moments(lam, theta0)
    report = {name: est[name]["value"] for name in QUANTITIES}
    report.update({f"{name}_exact": float(exact[name]) for name in QUANTITIES})
    report.update({f"{name}_ci": est[name]["ci"] for name in QUANTITIES})
    report.update(spectrum=dict(dim=dim, stiff=stiff, lam_hi=lam_hi, lam_lo=lam_lo), sigma=sigma,
                  candidates=candidates, seed=seed)
    return report
