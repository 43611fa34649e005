"""CLSS (Algorithm 2) on the Eq. 14 model of a two-block spectrum, compared with Eq. 27."""

import time

import numpy as np

from .. import clss
from . import closed_forms as cf
from .simulate import ou_runs


def default_steps(lam, alpha, minimum=200):
    """Probe horizon T = max(16 / gamma_min, minimum): tails start 8 slowest relaxation times (Eq. 21) in."""
    gamma = cf.rates(lam, alpha)
    if np.any(gamma <= 0):
        raise ValueError("alpha * lambda must lie in (0, 2) for every mode to choose T; give the steps")
    return max(int(np.ceil(16.0 / gamma.min())), minimum)


def ou_probes(lam, alpha, sigma, populations, seeds, steps, rng):
    """Algorithm 2's step-(1) probes on the Eq. 14 model from the checkpoint theta* = 0, one Probe per N."""
    rewards, dist = ou_runs(lam, alpha, sigma, populations, seeds, steps, rng)
    return [clss.Probe(n, sigma, r[:, 1:], d[:, 1:]) for n, r, d in zip(populations, rewards, dist)]


def two_block_clss(dim, stiff, lam_hi, lam_lo, alpha, sigma, populations=(4, 8, 16, 32, 64), seeds=64,
                   steps=None, seed=0, settings=clss.Settings()):
    """Simulate probes, run CLSS and report it next to Eq. 27 and Eq. 19; returns a JSON-ready dictionary."""
    start = time.perf_counter()
    lam = cf.two_block_spectrum(dim, stiff, lam_hi, lam_lo)
    steps = steps or default_steps(lam, alpha)
    probes = ou_probes(lam, alpha, sigma, populations, seeds, steps, np.random.default_rng(seed))
    result = clss.fit(probes, alpha, settings)
    expected = cf.d_eff(lam, alpha)
    report = result.to_dict()
    report.update(d_eff_eq27=expected, rel_error=(result.d_eff - expected) / expected,
                  eq19_plateaus={str(n): cf.plateau(lam, alpha, sigma**2 / n) for n in populations},
                  spectrum=dict(dim=dim, stiff=stiff, lam_hi=lam_hi, lam_lo=lam_lo),
                  sigma=sigma, seeds=seeds, steps=steps, seed=seed, runtime_s=round(time.perf_counter() - start, 3))
    return clss.json_ready(report)
