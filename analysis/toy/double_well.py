"""Double-well metastability (paper Appendix E, Eqs. 38-50): simulator, hop counting and Eyring-Kramers.

The loss is L(x) = lam_dw / 4 (x^2 - a^2)^2 (Eq. 44); the reward shown in Figure 9 is J = -L.
"""

from dataclasses import dataclass

import numpy as np

from .simulate import noisy_gradient, trajectory


def loss(x, lam_dw, a):
    """Quartic double-well L(x) = lam_dw / 4 (x^2 - a^2)^2 (Eq. 44)."""
    return 0.25 * lam_dw * (x**2 - a**2) ** 2


def noise_intensity(alpha, sigma, population):
    """Langevin noise epsilon = alpha sigma^2 / (2 N) (Eq. 40)."""
    return alpha * sigma**2 / (2.0 * population)


def barrier(lam_dw, a):
    """Barrier height Delta L = lam_dw a^4 / 4 (Eq. 45)."""
    return 0.25 * lam_dw * a**4


def curvatures(lam_dw, a):
    """L''(+-a) = 2 lam_dw a^2 at the minima and L''(0) = -lam_dw a^2 at the saddle (Eq. 46)."""
    return 2.0 * lam_dw * a**2, -lam_dw * a**2


def barrier_to_noise(lam_dw, a, alpha, sigma, population):
    """Delta L / epsilon = lam_dw a^4 N / (2 alpha sigma^2) (Eq. 48)."""
    return barrier(lam_dw, a) / noise_intensity(alpha, sigma, population)


def escape_steps(lam_dw, a, alpha, sigma, population):
    """Eyring-Kramers mean steps to hop: 2 pi / (alpha sqrt(L''(x-) |L''(z)|)) exp(Delta L / eps) (Eqs. 42, 47)."""
    k_min, k_saddle = curvatures(lam_dw, a)
    ratio = barrier_to_noise(lam_dw, a, alpha, sigma, population)
    return 2.0 * np.pi / (alpha * np.sqrt(k_min * abs(k_saddle))) * np.exp(ratio)


def hop_probability(steps, mean_escape):
    """Pr(at least one hop within T steps) = 1 - exp(-T / E[K_esc]) (Eq. 43)."""
    return 1.0 - np.exp(-np.asarray(steps, dtype=float) / mean_escape)


def well_variance(lam_dw, a, alpha, sigma, population):
    """Within-well OU variance Var(x) = epsilon / L''(-a) = alpha sigma^2 / (4 N lam_dw a^2) (Eq. 50)."""
    return noise_intensity(alpha, sigma, population) / curvatures(lam_dw, a)[0]


def runs(lam_dw, a, alpha, sigma, population, seeds, steps, rng, x0=None):
    """States x_0..x_T of Eq. 38 for ``seeds`` independent runs started at x0 (default: the left minimum -a)."""
    start = np.full(seeds, -a if x0 is None else x0, dtype=float)
    ascent = noisy_gradient(lambda x: -lam_dw * x * (x**2 - a**2), sigma / np.sqrt(population))
    return trajectory(start, ascent, alpha, steps, rng)


@dataclass(frozen=True)
class Hops:
    """Per-run hop statistics: number of hops, step of the first hop (inf if none), final position."""

    count: np.ndarray
    first: np.ndarray
    final: np.ndarray


def count_hops(states, a, margin=0.5):
    """Count well switches with hysteresis: a run committed to one well hops when it passes -+margin*a.

    A run starts committed to the well of sign(x_0) (uncommitted if |x_0| < margin a; its first
    commitment is not a hop). ``states`` is any iterable of per-run positions, one item per step.
    """
    states = iter(states)
    x = np.asarray(next(states), dtype=float)
    side = np.where(np.abs(x) >= margin * a, np.sign(x), 0.0)
    count = np.zeros(x.shape, dtype=int)
    first = np.full(x.shape, np.inf)
    for step, x in enumerate(states, start=1):
        reached = np.where(x >= margin * a, 1.0, np.where(x <= -margin * a, -1.0, 0.0))
        hop = (reached != 0) & (side != 0) & (reached != side)
        count += hop
        first = np.where(hop & np.isinf(first), step, first)
        side = np.where(reached != 0, reached, side)
    return Hops(count, first, np.asarray(x, dtype=float))


def mean_escape_estimate(hops, steps):
    """Censored-exponential estimate of E[K_esc]: steps at risk before the first hop / number of runs that hopped."""
    hopped = np.isfinite(hops.first)
    exposure = np.where(hopped, hops.first, steps).sum()
    return exposure / hopped.sum() if hopped.any() else np.inf
