"""CLSS (Algorithm 2) on toy probes of a two-block spectrum, compared with Eq. 27.

Two simulators: ``ou`` (Eq. 14, whose noise is exactly kappa = sigma^2 / N) and ``es`` (Algorithm 1
with the clss job's shaping and update form, fitted against the measured kappa_eff, SCHEMA.md).
"""

import dataclasses
import time

import numpy as np

from .. import clss
from ..clss.kappa import step_noise
from . import closed_forms as cf
from .simulate import es_clss_runs, ou_runs


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


def es_probes(lam, alpha, sigma, populations, seeds, steps, rng, shaping="zscore", update_form="eq1",
              baseline=True):
    """Probes of Algorithm 1 from theta* = 0, one Probe per N, with the alpha_eff and kappa_eff measured
    from the member rewards exactly as :func:`analysis.clss.read_hdf5` does from the job's file."""
    probes = []
    for n in populations:
        rewards, dist, members, base = es_clss_runs(lam, alpha, sigma, n, seeds, steps, rng, shaping, update_form,
                                                    baseline)
        gain, kappa = step_noise(members, alpha, sigma, shaping, update_form, base if baseline else None)
        probes.append(clss.Probe(n, sigma, rewards[:, 1:], dist[:, 1:], gain, kappa))
    return probes


def _summary(result):
    """The nominal fit's headline, labelled nominal (kappa = sigma^2 / N)."""
    return dict(kappa_source="nominal", ok=result.ok, reason=result.reason, d_eff=result.d_eff,
                d_eff_ci=result.d_eff_ci, slope=result.slope, p_value=result.p_value)


def two_block_clss(dim, stiff, lam_hi, lam_lo, alpha, sigma, populations=(4, 8, 16, 32, 64), seeds=64,
                   steps=None, seed=0, settings=clss.Settings(), simulator="ou", es=None):
    """Simulate probes, run CLSS and report it next to Eq. 27 and Eq. 19; returns a JSON-ready dictionary.

    ``es`` holds the ES simulator's shaping, update_form and baseline (default zscore, eq1, True); the
    default horizon uses ES's alpha_eff at theta*. Eq. 27 is evaluated at the fit's step: alpha for
    Eq. 14, the measured alpha_eff for ES.
    """
    start = time.perf_counter()
    lam = cf.two_block_spectrum(dim, stiff, lam_hi, lam_lo)
    es = dict(shaping="zscore", update_form="eq1", baseline=True) | (es or {})
    gain = alpha if simulator == "ou" else cf.es_gain(lam, alpha, sigma, es["shaping"], es["update_form"])
    steps = steps or default_steps(lam, gain)
    rng = np.random.default_rng(seed)
    if simulator == "ou":
        probes = ou_probes(lam, alpha, sigma, populations, seeds, steps, rng)
    else:
        probes = es_probes(lam, alpha, sigma, populations, seeds, steps, rng, **es)
    result = clss.fit(probes, alpha, settings)
    step = result.alpha_eff if result.kappa_source == "measured" else alpha
    expected = cf.d_eff(lam, step) if np.isfinite(step) else np.nan
    report = result.to_dict()
    report.update(simulator=simulator, es=es if simulator == "es" else None, d_eff_eq27=expected,
                  rel_error=(result.d_eff - expected) / expected,
                  eq19_plateaus={str(p.population): cf.plateau(lam, step, p.kappa) for p in result.plateaus},
                  spectrum=dict(dim=dim, stiff=stiff, lam_hi=lam_hi, lam_lo=lam_lo),
                  sigma=sigma, seeds=seeds, steps=steps, seed=seed, runtime_s=round(time.perf_counter() - start, 3))
    if result.kappa_source == "measured":
        report["nominal"] = _summary(clss.fit(probes, alpha, dataclasses.replace(settings, kappa="nominal")))
    return clss.json_ready(report)
