"""The noise ES really injects: kappa_eff and the effective step from each step's member rewards.

ES steps theta += a_u (1/N) sum_k u_k eps_k with a_u = alpha / sigma (update form "eq1", Eq. 1) or
alpha ("qiu"), u_k the shaped rewards. Matching this to Eq. 14, theta += alpha_eff (grad J +
sqrt(kappa_eff) xi), gives alpha_eff = a_u sigma E[u'(r)] (Stein's lemma) and kappa_eff =
a_u^2 sum_k u_k^2 / (N^2 alpha_eff^2); the derivation is in SCHEMA.md.
"""

import numpy as np
from scipy import stats

SHAPINGS = ("zscore", "centered_rank", "raw")
UPDATE_FORMS = ("eq1", "qiu")


def shape(rewards, method):
    """Shaped rewards u_k over the last axis (members): zscore, centered_rank (in [-1/2, 1/2]) or raw."""
    r = np.asarray(rewards, dtype=float)
    if method == "raw":
        return r
    if method == "zscore":
        std = r.std(axis=-1, keepdims=True)
        return np.divide(r - r.mean(axis=-1, keepdims=True), std, out=np.zeros_like(r), where=std > 0)
    if method == "centered_rank":
        n = r.shape[-1]
        return (stats.rankdata(r, axis=-1) - 1.0) / max(n - 1, 1) - 0.5
    raise ValueError(f"shaping: must be one of {SHAPINGS}, got {method!r}")


def update_scale(alpha, sigma, update_form):
    """a_u of theta += a_u (1/N) sum_k u_k eps_k: alpha / sigma for "eq1" (Eq. 1), alpha for "qiu"."""
    if update_form not in UPDATE_FORMS:
        raise ValueError(f"update_form: must be one of {UPDATE_FORMS}, got {update_form!r}")
    return alpha / sigma if update_form == "eq1" else alpha


def utility_slope(rewards, method):
    """Mean over members of du_k/dr_k per step: 1 (raw), (1 - 2/N) / std (zscore, exact), and
    1 / (2 sqrt(pi) std), the density of r_j - r_k at 0, for centered_rank (Gaussian rewards)."""
    if method == "raw":
        return np.ones(np.shape(rewards)[:-1])
    n = np.shape(rewards)[-1]
    std = np.asarray(rewards, dtype=float).std(axis=-1, ddof=1 if method == "centered_rank" else 0)
    slope = (1.0 - 2.0 / n) / std if method == "zscore" else 1.0 / (2.0 * np.sqrt(np.pi) * std)
    return np.where(std > 0, slope, np.nan)


def step_noise(member, alpha, sigma, shaping, update_form, baseline=None):
    """Per-step effective step alpha_eff and noise kappa_eff from member rewards (..., N).

    ``baseline`` (..., ) is the value subtracted from every member's reward before shaping (the
    unperturbed reward J(theta_t)), or None. Returns (alpha_eff, kappa_eff), each of shape (...).
    """
    member = np.asarray(member, dtype=float)
    if baseline is not None:
        member = member - np.asarray(baseline, dtype=float)[..., None]
    u = shape(member, shaping)
    a_u = update_scale(alpha, sigma, update_form)
    gain = a_u * sigma * utility_slope(member, shaping)
    noise = a_u**2 * np.sum(u**2, axis=-1) / member.shape[-1] ** 2  # per-coordinate variance of the step
    return gain, noise / gain**2
