"""CLSS (Algorithm 2) on Eq. 14 probes: d_eff recovery on several spectra (Eq. 27) and the FAIL paths."""

import numpy as np
import pytest

from analysis import clss
from analysis.toy import closed_forms as cf
from analysis.toy.spectroscopy import default_steps, ou_probes

POPULATIONS = (4, 8, 16, 32, 64)


def probes(lam, alpha, sigma, steps=None, seeds=64, seed=0):
    """Probe trajectories of Eq. 14 from theta* = 0 at each population."""
    steps = steps or default_steps(lam, alpha)
    return ou_probes(lam, alpha, sigma, POPULATIONS, seeds, steps, np.random.default_rng(seed))


SPECTRA = [  # (lam, alpha, sigma); none is the paper's Figure 3 spectrum
    (cf.two_block_spectrum(32, 4, 2.0, 0.1), 0.2, 1.0),
    (cf.two_block_spectrum(48, 8, 4.0, 0.05), 0.4, 0.5),  # alpha lambda_hi = 1.6: d_eff = 80.4 vs rank 48
    (np.full(24, 0.5), 0.5, 1.0),
    (np.geomspace(1.5, 0.05, 20), 0.3, 2.0),  # a continuous spectrum, not two blocks
]


@pytest.mark.parametrize("lam, alpha, sigma", SPECTRA)
def test_recovers_eq27(lam, alpha, sigma):
    result = clss.fit(probes(lam, alpha, sigma), alpha)
    expected = cf.d_eff(lam, alpha)
    assert result.ok, result.reason
    assert result.d_eff == pytest.approx(expected, rel=0.1)
    se = (result.d_eff_ci[1] - result.d_eff_ci[0]) / (2 * 1.96)
    assert abs(result.d_eff - expected) < 3 * se  # the interval is calibrated, not just wide
    assert se < 0.05 * expected


def test_interval_coverage():
    """95% intervals cover Eq. 27 in 40 repetitions on a small spectrum: at least 34 (binomial p < 1%)."""
    lam, alpha = cf.two_block_spectrum(8, 2, 1.0, 0.2), 0.3
    covered = 0
    for seed in range(40):
        lo, hi = clss.fit(probes(lam, alpha, 1.0, seeds=16, seed=100 + seed), alpha).d_eff_ci
        covered += lo <= cf.d_eff(lam, alpha) <= hi
    assert covered >= 34


def test_fails_on_non_local_trajectories():
    """Zero modes random-walk away from theta* without changing J: only the locality filter sees it."""
    lam, alpha = np.r_[np.ones(8), np.zeros(8)], 0.2
    runs = probes(lam, alpha, 1.0, steps=300)
    assert clss.fit(runs, alpha).d_eff == pytest.approx(cf.d_eff(lam, alpha), rel=0.1)
    result = clss.fit(runs, alpha, clss.Settings(tau_loc=2.0))
    assert not result.ok
    assert "N=4: 0/64 valid (64 non-local" in result.reason  # N=4 wanders furthest
    assert result.plateaus[-1].non_local == 0  # N=64 stays within the threshold


def test_fails_on_unsettled_tails():
    """Flat modes with 1 / gamma = 125 steps and a horizon of 120: the reward is still falling."""
    lam, alpha = cf.two_block_spectrum(64, 4, 1.0, 0.02), 0.1
    runs = probes(lam, alpha, 1.0, steps=120)
    result = clss.fit(runs, alpha)
    assert not result.ok and result.reason.startswith("tails not settled")
    assert clss.fit(probes(lam, alpha, 1.0), alpha).ok  # the default horizon settles


def test_per_seed_tail_tolerance_rejects_seeds():
    lam, alpha = cf.two_block_spectrum(16, 4, 1.0, 0.2), 0.2
    result = clss.fit(probes(lam, alpha, 1.0), alpha, clss.Settings(tau_stat=1e-3))
    assert not result.ok and "unsettled" in result.reason
    assert sum(p.unsettled for p in result.plateaus) > 0


def test_fails_when_gap_is_not_linear_in_kappa():
    """A saturating reward exp(3 (J - 1)) bends the plateau-vs-kappa line."""
    lam, alpha = cf.two_block_spectrum(16, 4, 1.0, 0.2), 0.2
    bent = [clss.Probe(p.population, p.sigma, np.exp(3 * (p.rewards - 1))) for p in probes(lam, alpha, 1.0, seeds=64)]
    result = clss.fit(bent, alpha)
    assert not result.ok and "not linear" in result.reason


def test_incomplete_seeds_and_low_acceptance():
    lam, alpha = cf.two_block_spectrum(16, 4, 1.0, 0.2), 0.2
    runs = probes(lam, alpha, 1.0)
    for p in runs:
        p.rewards[:40, -1] = np.nan  # 40 of 64 seeds stopped before the end
    result = clss.fit(runs, alpha)
    assert [p.incomplete for p in result.plateaus] == [40] * len(POPULATIONS)
    assert not result.ok and result.reason.startswith("acceptance rate 0.38")
    assert clss.fit(runs, alpha, clss.Settings(min_accept=0.3)).ok


def test_scan_returns_first_passing_alpha():
    lam = cf.two_block_spectrum(16, 4, 1.0, 0.2)
    by_alpha = {0.05: probes(lam, 0.05, 1.0, steps=60), 0.2: probes(lam, 0.2, 1.0), 0.4: probes(lam, 0.4, 1.0)}
    result = clss.scan(by_alpha)
    assert result.ok and result.alpha == 0.2
    failed = clss.scan({0.05: by_alpha[0.05], 0.4: probes(lam, 0.4, 1.0, steps=3)})
    assert not failed.ok and failed.reason.startswith("alpha=0.05: tails not settled")
    assert " | alpha=0.4: N=4: probe horizon T=3 is too short" in failed.reason


def test_tail_means_are_the_last_two_windows():
    j1, j0 = clss.tail_means(np.arange(20.0)[None, :], 4)
    assert (j1[0], j0[0]) == (17.5, 13.5)
    with pytest.raises(ValueError, match="tail window"):
        clss.tail_means(np.zeros((2, 10)), 6)


def test_fails_when_slope_interval_includes_zero():
    """Rewards dominated by measurement noise (std 0.3 per step, 4 seeds): the slope is not resolved."""
    lam, alpha = cf.two_block_spectrum(16, 4, 1.0, 0.2), 0.2
    rng = np.random.default_rng(5)
    noisy = [clss.Probe(p.population, p.sigma, p.rewards + 0.3 * rng.standard_normal(p.rewards.shape))
             for p in probes(lam, alpha, 0.05, seeds=4)]
    result = clss.fit(noisy, alpha)
    assert result.d_eff_ci[0] <= 0 <= result.d_eff_ci[1]
    assert not result.ok and result.reason.startswith("slope not resolved")


@pytest.mark.parametrize("steps", [1, 3])
def test_fails_on_horizons_too_short_for_the_tail_windows(steps):
    lam, alpha = cf.two_block_spectrum(16, 4, 1.0, 0.2), 0.2
    result = clss.fit(probes(lam, alpha, 1.0, steps=steps, seeds=4), alpha)
    assert not result.ok and f"probe horizon T={steps} is too short" in result.reason
    assert np.isnan(result.d_eff)
    explicit = clss.fit(probes(lam, alpha, 1.0, steps=2 * steps, seeds=4), alpha, clss.Settings(window=steps))
    assert "too short" not in explicit.reason  # an explicit window that fits is accepted


@pytest.mark.parametrize("field, value", [("r_min", 1), ("window", 0), ("min_populations", 1), ("level", 1.0)])
def test_impossible_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=f"^{field}: must be"):
        clss.Settings(**{field: value})
