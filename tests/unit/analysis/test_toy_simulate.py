"""Simulators against closed forms: Eq. 14 in the paper's Figure 3 setting, peak time (Eq. 25), ES (Eq. 1)."""

import numpy as np
import pytest

from analysis.toy import closed_forms as cf
from analysis.toy.figures import FIGURE3, example, example_peak
from analysis.toy.simulate import es_gradient, es_runs, ou_runs, quadratic_reward, record, trajectory

Z = 4.5  # per-step band; over a few hundred correlated steps the family-wise false alarm is < 1%


@pytest.fixture(scope="module")
def figure3_runs():
    """Eq. 14 in Figure 3's setting (D=128, d=16, lambda 1.0 / 0.05) for N=2 and N=8, 400 seeds."""
    lam, x0 = example()
    assert (lam.size, np.sum(lam == 1.0), lam.min()) == (128, 16, 0.05)
    rewards, _ = ou_runs(lam, FIGURE3["alpha"], FIGURE3["sigma"], [2, 8], 400, 300, np.random.default_rng(3), x0)
    return lam, x0, rewards


def test_figure3_monte_carlo_mean_within_band_every_step(figure3_runs):
    lam, x0, rewards = figure3_runs
    t = np.arange(rewards.shape[-1])
    for n, runs in zip([2, 8], rewards):
        mu, v = cf.mode_moments(lam, FIGURE3["alpha"], FIGURE3["sigma"] ** 2 / n, t, x0)
        half = Z * cf.reward_std(lam, mu, v) / np.sqrt(runs.shape[0])
        assert half.max() < 0.015  # tight enough to catch an error of 0.015 in the reward
        assert np.all(np.abs(runs.mean(axis=0) - cf.expected_reward(lam, mu, v)) <= half + 1e-12)
        spread = runs.std(axis=0)[1:] / cf.reward_std(lam, mu, v)[1:]  # 400 seeds: 3.5% per step
        assert np.all(np.abs(spread - 1) < 0.2) and abs(np.mean(spread) - 1) < 0.03


def test_figure3_measured_peak_matches_eq25(figure3_runs):
    _, _, rewards = figure3_runs
    t_peak = example_peak(FIGURE3["sigma"] ** 2 / 2)
    assert 10 < t_peak < 30
    assert abs(rewards[0].mean(axis=0).argmax() - t_peak) <= 3  # argmax of the Monte Carlo mean, 400 seeds


def _moment_z(samples, mean, var):
    """z-scores of the sample mean and sample variance of ``samples`` (axis 0) against exact values."""
    count = samples.shape[0]
    centred = samples - samples.mean(axis=0)
    var_se = np.sqrt((np.mean(centred**4, axis=0) - centred.var(axis=0) ** 2) / count)
    return (samples.mean(axis=0) - mean) / np.sqrt(var / count), (samples.var(axis=0) - var) / var_se


@pytest.mark.parametrize("baseline", [False, True])
def test_es_estimator_moments_at_fixed_theta(baseline):
    lam, sigma, draws = np.linspace(0.1, 1.0, 6), 0.3, 100000
    theta = np.array([[0.5, -0.4, 0.3, 0.0, 0.8, -0.1]])
    estimate = es_gradient(quadratic_reward(lam), sigma, population=1, baseline=baseline)
    samples = estimate(np.repeat(theta, draws, axis=0), np.random.default_rng(11))
    mean, var = cf.es_gradient_moments(theta, lam, sigma, 1, baseline)
    z_mean, z_var = _moment_z(samples, mean[0], var[0])
    assert np.abs(z_mean).max() < Z and np.abs(z_var).max() < Z


def test_raw_es_mean_follows_eq16():
    """Algorithm 1 is unbiased on a quadratic, so E[theta_t] = (1 - alpha lambda)^t theta_0 (Eq. 16)."""
    lam, alpha, sigma, seeds = np.array([1.0, 0.5, 0.2, 0.1]), 0.05, 0.5, 2000
    x0 = np.ones(4)
    states = trajectory(np.tile(x0, (seeds, 1)), es_gradient(quadratic_reward(lam), sigma, 16), alpha, 100,
                        np.random.default_rng(5))
    (theta,) = record(states, lambda x: x)
    t = np.arange(101)
    mu, _ = cf.mode_moments(lam, alpha, 0.0, t, x0)
    se = theta.std(axis=0).T / np.sqrt(seeds)
    assert np.all(np.abs(theta.mean(axis=0).T - mu) <= Z * se + 1e-12)


def test_baseline_es_reward_follows_exact_moment_recursion():
    """Stiff modes with alpha lambda = 0.4 and N = 2, where the gradient part of the ES noise matters."""
    lam = cf.two_block_spectrum(16, 4, 4.0, 0.2)
    x0 = np.where(lam == 4.0, 0.3, 0.0)
    alpha, sigma, n, seeds, steps = 0.1, 0.1, 2, 1000, 100
    rewards, _ = es_runs(lam, alpha, sigma, [n], seeds, steps, np.random.default_rng(9), x0, baseline=True)
    exact = cf.expected_reward(lam, 0.0, cf.es_second_moments(lam, alpha, sigma, n, np.arange(steps + 1), x0))
    se = rewards[0].std(axis=0) / np.sqrt(seeds)
    assert 1 - exact[-1] > 20 * se[-1]  # a noise floor far above the error bars
    assert np.all(np.abs(rewards[0].mean(axis=0) - exact) <= Z * se + 1e-12)
