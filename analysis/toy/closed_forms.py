"""Closed forms of the quadratic OU toy model (paper Appendix A, Eqs. 13-27) and of ES on it (Eq. 1).

Conventions: ``lam`` is the spectrum of C (shape (D,), the eigenbasis is used throughout, which is
exact because the noise is isotropic), ``kappa = sigma**2 / N`` is the effective noise (a scalar, or
one value per mode), ``t`` an integer array of steps. Mode axes are last, time axes first.
"""

import numpy as np


def two_block_spectrum(dim, stiff, lam_hi, lam_lo):
    """Two-block spectrum of Section 4: ``stiff`` eigenvalues lam_hi, ``dim - stiff`` eigenvalues lam_lo."""
    return np.concatenate([np.full(stiff, float(lam_hi)), np.full(dim - stiff, float(lam_lo))])


def contraction(lam, alpha):
    """Per-mode contraction factor a_i = 1 - alpha lambda_i (Eq. 15)."""
    return 1.0 - alpha * np.asarray(lam, dtype=float)


def mode_moments(lam, alpha, kappa, t, mu0, v0=0.0):
    """Mode means and variances mu_{i,t}, v_{i,t} (Eq. 16); returns two arrays of shape (len(t), D)."""
    a = contraction(lam, alpha)
    t = np.asarray(t)[:, None]
    a_t = a**t
    b2 = alpha**2 * np.asarray(kappa, dtype=float)
    unit = a**2 == 1.0  # zero mode: Eq. 16's ratio is 0/0, the geometric sum is t
    geometric = np.where(unit, t, (1.0 - a_t**2) / np.where(unit, 1.0, 1.0 - a**2))
    return a_t * mu0, a_t**2 * v0 + b2 * geometric


def stationary_variance(lam, alpha, kappa):
    """Stationary mode variance v_{i,inf} = alpha sigma^2 / (N lambda_i (2 - alpha lambda_i)) (Eq. 17)."""
    lam = np.asarray(lam, dtype=float)
    return alpha * np.asarray(kappa, dtype=float) / (lam * (2.0 - alpha * lam))


def expected_reward(lam, mu, v):
    """E[J(theta_t)] = 1 - 1/2 sum_i lambda_i (mu_{i,t}^2 + v_{i,t}) (Eq. 18)."""
    return 1.0 - 0.5 * np.sum(np.asarray(lam) * (mu**2 + v), axis=-1)


def reward_std(lam, mu, v):
    """Standard deviation of J(theta_t) for Gaussian modes: Var J = sum_i lambda_i^2 (v^2/2 + mu^2 v)."""
    return np.sqrt(np.sum(np.asarray(lam) ** 2 * (0.5 * v**2 + mu**2 * v), axis=-1))


def plateau(lam, alpha, kappa):
    """Terminal plateau J_inf = 1 - 1/2 sum_{lambda_i > 0} lambda_i v_{i,inf} (Eq. 19)."""
    lam = np.asarray(lam, dtype=float)
    pos = lam > 0
    v_inf = stationary_variance(lam[pos], alpha, np.broadcast_to(kappa, lam.shape)[pos])
    return 1.0 - 0.5 * np.sum(lam[pos] * v_inf)


def amplitudes(lam, alpha, kappa, x0):
    """Mixture amplitudes A_i = -1/2 lambda_i (x_{i,0}^2 - v_{i,inf}) for deterministic x0 (Eq. 20)."""
    lam = np.asarray(lam, dtype=float)
    return -0.5 * lam * (np.asarray(x0, dtype=float) ** 2 - stationary_variance(lam, alpha, kappa))


def rates(lam, alpha):
    """Mixture rates gamma_i = -2 log|1 - alpha lambda_i| (Eq. 21)."""
    return -2.0 * np.log(np.abs(contraction(lam, alpha)))


def mixture_reward(t, amp, gamma, j_inf):
    """E[J(theta_t)] = J_inf + sum_i A_i exp(-gamma_i t) (Eq. 21), t may be real."""
    return j_inf + np.exp(-np.multiply.outer(np.asarray(t, dtype=float), gamma)) @ amp


def peak_time(amp_hi, amp_lo, gamma_hi, gamma_lo):
    """Two-mode peak time t_peak = log(gamma_hi |A_hi| / (gamma_lo A_lo)) / (gamma_hi - gamma_lo) (Eq. 25)."""
    return np.log(gamma_hi * abs(amp_hi) / (gamma_lo * amp_lo)) / (gamma_hi - gamma_lo)


def d_eff(lam, alpha):
    """Curvature-weighted effective dimension d_eff(alpha) = 2 sum_{lambda_i > 0} 1 / (2 - alpha lambda_i) (Eq. 27)."""
    lam = np.asarray(lam, dtype=float)
    lam = lam[lam > 0]
    return 2.0 * np.sum(1.0 / (2.0 - alpha * lam))


def es_noise_floor(lam):
    """c_a = E[q^2 eps_a^2] / 4, q = eps^T C eps: baseline ES adds variance sigma^2 c_a / N per mode at theta*."""
    lam = np.asarray(lam, dtype=float)
    tr1, tr2 = lam.sum(), np.sum(lam**2)
    return 0.25 * (tr1**2 + 2.0 * tr2) + tr1 * lam + 2.0 * lam**2


def es_gradient_moments(theta, lam, sigma, population, baseline=False):
    """Mean and per-coordinate variance of Algorithm 1's estimator (Eq. 1) on J of Eq. 13 at fixed theta.

    Exact Gaussian moments: the mean is grad J = -C theta (Eq. 3); the variance is Eq. 5's
    Sigma_est / (N sigma^2), with raw rewards r_k or with r_k - J(theta) when ``baseline``.
    """
    lam = np.asarray(lam, dtype=float)
    g = -lam * np.asarray(theta, dtype=float)
    member_var = np.sum(g**2, axis=-1, keepdims=True) + g**2 + sigma**2 * es_noise_floor(lam)  # of r eps / sigma
    if not baseline:
        j = 1.0 - 0.5 * np.sum(lam * np.asarray(theta, dtype=float) ** 2, axis=-1, keepdims=True)
        member_var = member_var + j**2 / sigma**2 - j * (lam.sum() + 2.0 * lam)
    return g, member_var / population


def es_second_moments(lam, alpha, sigma, population, t, theta0):
    """E[theta_{i,t}^2] of baseline ES (r_k - J(theta)) on Eq. 13: the exact linear recursion of Eq. 31.

    Cov(g_hat | theta) is quadratic in theta, so m_{t+1} = a^2 m_t + alpha^2 E[var(g_hat | theta_t)] closes.
    """
    lam = np.asarray(lam, dtype=float)
    a2 = contraction(lam, alpha) ** 2
    floor = sigma**2 * es_noise_floor(lam)
    m = np.broadcast_to(np.asarray(theta0, dtype=float) ** 2, lam.shape).astype(float)
    out = np.empty((int(np.max(t)) + 1, lam.size))
    for step in range(out.shape[0]):
        out[step] = m
        m = a2 * m + alpha**2 / population * (lam**2 @ m + lam**2 * m + floor)
    return out[np.asarray(t)]


def es_gain(lam, alpha, sigma, shaping, update_form):
    """alpha_eff of Algorithm 1 at theta* (SCHEMA.md of analysis.clss): a_u sigma E[u'], with the member
    rewards' spread sigma^2 sqrt(tr C^2 / 2) at the maximum of Eq. 13."""
    spread = sigma**2 * np.sqrt(0.5 * np.sum(np.asarray(lam, dtype=float) ** 2))
    slope = {"raw": 1.0, "zscore": 1.0 / spread, "centered_rank": 1.0 / (2.0 * np.sqrt(np.pi) * spread)}[shaping]
    return (alpha / sigma if update_form == "eq1" else alpha) * sigma * slope
