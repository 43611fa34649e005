"""Monte Carlo simulators of the toy models, vectorised over seeds (rows).

One core, :func:`trajectory`, iterates the constant-step noisy ascent theta <- theta + alpha g_hat
(Eq. 11); the models differ only in the gradient estimator g_hat: :func:`noisy_gradient` (isotropic
Gaussian noise, Eqs. 14 and 38) or :func:`es_gradient` (Algorithm 1, Eq. 1). :func:`es_clss_runs`
runs Algorithm 1 with the clss job's shaping, update form and baseline, recording member rewards.
"""

import numpy as np

from analysis.clss.kappa import shape, update_scale


def trajectory(theta0, estimator, alpha, steps, rng):
    """Yield theta_0, ..., theta_T of theta_{t+1} = theta_t + alpha g_hat(theta_t) (Eq. 11); rows are seeds."""
    theta = np.array(theta0, dtype=float)
    yield theta
    for _ in range(steps):
        theta = theta + alpha * estimator(theta, rng)
        yield theta


def record(states, *observables):
    """Evaluate each observable on every state; returns one array per observable, time on the last axis."""
    columns = [tuple(f(theta) for f in observables) for theta in states]
    return tuple(np.stack(series, axis=-1) for series in zip(*columns))


def noisy_gradient(gradient, noise_std):
    """g_hat(theta) = grad J(theta) + (sigma / sqrt N) xi, xi ~ N(0, I) (Eqs. 11, 14, 38); noise_std per row."""
    return lambda theta, rng: gradient(theta) + noise_std * rng.standard_normal(theta.shape)


def es_gradient(reward, sigma, population, baseline=False):
    """Algorithm 1's estimator g_hat = sum_k r_k eps_k / (N sigma) (Eq. 1), r_k = J(theta + sigma eps_k) - b.

    b = 0 as in Algorithm 1, or b = J(theta) (one extra evaluation) when ``baseline``.
    """
    def estimate(theta, rng):
        eps = rng.standard_normal((population,) + theta.shape)
        r = reward(theta + sigma * eps) - (reward(theta) if baseline else 0.0)
        return np.einsum("k...,k...d->...d", r, eps) / (population * sigma)
    return estimate


def quadratic_reward(lam):
    """J(theta) = 1 - theta^T C theta / 2 with C = diag(lam) (Eq. 13), over the last axis."""
    return lambda theta: 1.0 - 0.5 * (theta**2) @ lam


def quadratic_gradient(lam):
    """grad J(theta) = -C theta (Eq. 13)."""
    return lambda theta: -lam * theta


def distance(theta):
    """Locality metric ||theta - theta*|| with the checkpoint theta* = 0."""
    return np.linalg.norm(theta, axis=-1)


def _start(theta0, rows, dim):
    """Rows copies of the start point theta0 (scalar or (D,))."""
    return np.broadcast_to(np.asarray(theta0, dtype=float), (rows, dim)).copy()


def ou_states(lam, alpha, sigma, populations, seeds, steps, rng, theta0=0.0):
    """States of Eq. 14 from theta0, ``seeds`` rows per N stacked population-major (one batch for all N)."""
    lam = np.asarray(lam, dtype=float)
    noise_std = np.repeat(sigma / np.sqrt(np.asarray(populations, dtype=float)), seeds)[:, None]
    return trajectory(_start(theta0, noise_std.shape[0], lam.size),
                      noisy_gradient(quadratic_gradient(lam), noise_std), alpha, steps, rng)


def ou_runs(lam, alpha, sigma, populations, seeds, steps, rng, theta0=0.0):
    """Rewards and distances of Eq. 14 runs, each (len(populations), seeds, T + 1)."""
    states = ou_states(lam, alpha, sigma, populations, seeds, steps, rng, theta0)
    rewards, dist = record(states, quadratic_reward(np.asarray(lam, dtype=float)), distance)
    shape = (len(populations), seeds, steps + 1)
    return rewards.reshape(shape), dist.reshape(shape)


def es_runs(lam, alpha, sigma, populations, seeds, steps, rng, theta0=0.0, baseline=False):
    """Algorithm 1 on J of Eq. 13 for every N: rewards and distances, each (len(populations), seeds, T + 1)."""
    lam = np.asarray(lam, dtype=float)
    reward = quadratic_reward(lam)
    runs = [record(trajectory(_start(theta0, seeds, lam.size), es_gradient(reward, sigma, n, baseline),
                              alpha, steps, rng), reward, distance)
            for n in populations]
    return tuple(np.stack(series) for series in zip(*runs))


def es_clss_runs(lam, alpha, sigma, population, seeds, steps, rng, shaping="zscore", update_form="eq1",
                 baseline=True):
    """Algorithm 1 as the clss job runs it, on J of Eq. 13 from theta* = 0, ``seeds`` rows.

    Each step draws N Gaussian perturbations, subtracts J(theta_t) when ``baseline``, shapes the
    rewards (zscore, centered_rank, raw) and steps theta += a_u (1/N) sum_k u_k eps_k, a_u = alpha / sigma
    ("eq1", Eq. 1) or alpha ("qiu"). Returns rewards and distances (R, T + 1), member rewards (R, T, N)
    and the subtracted baseline (R, T), column t being step t's update.
    """
    lam = np.asarray(lam, dtype=float)
    reward, a_u = quadratic_reward(lam), update_scale(alpha, sigma, update_form)
    theta = np.zeros((seeds, lam.size))
    rewards, dist = np.empty((seeds, steps + 1)), np.empty((seeds, steps + 1))
    members, base = np.empty((seeds, steps, population)), np.empty((seeds, steps))
    for t in range(steps + 1):
        rewards[:, t], dist[:, t] = reward(theta), distance(theta)
        if t == steps:
            break
        eps = rng.standard_normal((seeds, population, lam.size))
        members[:, t] = reward(theta[:, None, :] + sigma * eps)
        base[:, t] = rewards[:, t] if baseline else 0.0
        u = shape(members[:, t] - base[:, t, None], shaping)
        theta = theta + a_u * np.einsum("rk,rkd->rd", u, eps) / population
    return rewards, dist, members, base
