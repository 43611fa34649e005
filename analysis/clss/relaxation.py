"""How many relaxation times a probe horizon spans: the seed-mean reward's integrated relaxation time towards its
tail plateau (for Eq. 14's mode of rate alpha lambda, J relaxes as exp(-2 alpha lambda t))."""

import numpy as np


def relaxation_steps(rewards, window):
    """Integrated relaxation time in steps, tau = sum_t (J_t - J_inf) / (J_0 - J_inf) - 1/2 over the steps before
    the tail (J_t the seed mean, J_inf the last window's mean); NaN when J_0 is within two standard errors of
    J_inf (the start is already on the plateau, so no relaxation is seen) or fewer than two seeds are complete."""
    rewards = np.asarray(rewards, dtype=float)
    rewards = rewards[np.all(np.isfinite(rewards), axis=1)]
    steps = rewards.shape[1]
    if len(rewards) < 2 or not 1 <= window < steps:
        return np.nan
    mean = rewards.mean(axis=0)
    plateau = mean[steps - window:].mean()
    tails = rewards[:, steps - window:].mean(axis=1)
    se = np.hypot(rewards[:, 0].std(ddof=1), tails.std(ddof=1)) / np.sqrt(len(rewards))
    gap = mean[:steps - window] - plateau
    if not abs(gap[0]) > 2 * se:
        return np.nan
    return float(max(gap.sum() / gap[0] - 0.5, 0.5))


def horizon_relaxations(steps, taus):
    """T over the longest resolved relaxation time of the populations (NaN when none is resolved)."""
    resolved = [t for t in taus if np.isfinite(t)]
    return float(steps / max(resolved)) if resolved else np.nan
