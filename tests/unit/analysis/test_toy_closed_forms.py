"""Closed forms of Appendix A (Eqs. 16-27) against each other and against the Eq. 14 simulation."""

import numpy as np
import pytest

from analysis.toy import closed_forms as cf
from analysis.toy.simulate import noisy_gradient, quadratic_gradient, record, trajectory

LAM = np.array([1.5, 1.0, 0.3, 0.05, 0.01])
ALPHA, KAPPA = 0.8, 0.04  # alpha * 1.5 = 1.2 > 1: one oscillating mode (a < 0) is covered too


def test_eq16_tends_to_eq17():
    _, v = cf.mode_moments(LAM, ALPHA, KAPPA, np.array([20000]), mu0=0.3)
    np.testing.assert_allclose(v[0], cf.stationary_variance(LAM, ALPHA, KAPPA), rtol=1e-9)


def test_eq19_plateau_is_eq18_at_stationarity_and_eq27_slope():
    mu, v = cf.mode_moments(LAM, ALPHA, KAPPA, np.array([20000]), mu0=0.3)
    assert cf.expected_reward(LAM, mu, v)[0] == pytest.approx(cf.plateau(LAM, ALPHA, KAPPA), abs=1e-12)
    # Eq. 26-27: 1 - J_inf = alpha / 4 * d_eff(alpha) * kappa, for every kappa
    for kappa in (1e-3, 0.1, 2.0):
        assert 1 - cf.plateau(LAM, ALPHA, kappa) == pytest.approx(ALPHA / 4 * cf.d_eff(LAM, ALPHA) * kappa, rel=1e-12)


def test_eq21_mixture_equals_eq18():
    x0 = np.array([0.5, -0.2, 0.1, 0.3, 0.0])
    t = np.arange(400)
    direct = cf.expected_reward(LAM, *cf.mode_moments(LAM, ALPHA, KAPPA, t, x0))
    mixture = cf.mixture_reward(t, cf.amplitudes(LAM, ALPHA, KAPPA, x0), cf.rates(LAM, ALPHA),
                                cf.plateau(LAM, ALPHA, KAPPA))
    np.testing.assert_allclose(mixture, direct, rtol=0, atol=1e-12)


def test_eq25_is_the_maximum_of_eq24():
    lam, alpha, kappa = np.array([1.0, 0.05]), 0.1, 0.2
    amp, gamma = cf.amplitudes(lam, alpha, kappa, np.array([0.6, 0.0])), cf.rates(lam, alpha)
    assert amp[0] < 0 < amp[1]  # the rise-then-decay condition below Eq. 24
    t_peak = cf.peak_time(amp[0], amp[1], gamma[0], gamma[1])
    fine = np.linspace(0, 200, 200001)
    curve = cf.mixture_reward(fine, amp, gamma, 0.0)
    assert fine[curve.argmax()] == pytest.approx(t_peak, abs=2e-3)
    assert np.sum(gamma * amp * np.exp(-gamma * t_peak)) == pytest.approx(0, abs=1e-12)  # Eq. 23


def test_d_eff_weights_and_small_step_limit():
    lam = np.array([3.0, 1.0, 0.0, 0.0, -0.5])  # zero and negative modes are not counted (Eq. 27)
    assert cf.d_eff(lam, 1e-9) == pytest.approx(2.0, rel=1e-8)  # rank of the positive part
    assert cf.d_eff(lam, 0.5) == pytest.approx(2 * (1 / 0.5 + 1 / 1.5))


def test_eq16_moments_against_simulation():
    """Per-mode mean and variance of Eq. 15 after t steps, 20000 seeds: within 4.5 standard errors."""
    lam, alpha, kappa, seeds = np.array([1.0, 0.4, 0.05]), 0.5, 0.3, 20000
    x0 = np.array([1.0, -0.5, 0.8])
    states = trajectory(np.tile(x0, (seeds, 1)), noisy_gradient(quadratic_gradient(lam), np.sqrt(kappa)),
                        alpha, 60, np.random.default_rng(7))
    mean, var = record(states, lambda x: x.mean(axis=0), lambda x: x.var(axis=0))
    t = np.array([1, 5, 20, 60])
    mu, v = cf.mode_moments(lam, alpha, kappa, t, x0)
    assert np.all(np.abs(mean[:, t].T - mu) <= 4.5 * np.sqrt(v / seeds))
    assert np.all(np.abs(var[:, t].T / v - 1) <= 4.5 * np.sqrt(2 / seeds))
