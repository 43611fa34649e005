"""CLSS weights and calibration: zero errors are pooled or FAIL (never unit weights), and on Eq. 14
probes of drawn spectra, weak and strong curvature, the verdict is ok and d_eff matches Eq. 27."""

import numpy as np
import pytest

from analysis import clss
from analysis.clss.fitting import slope_fit
from analysis.toy import closed_forms as cf
from analysis.toy.__main__ import main
from analysis.toy.spectroscopy import default_steps, ou_probes

POPULATIONS = (4, 8, 16, 32, 64)
SIGMA = 1.0


def synthetic(values, spreads, seeds=12, steps=8, rng=None):
    """Probes whose seed r holds value + spread * z_r (+ small per-step noise when spread > 0)."""
    rng = rng or np.random.default_rng(0)
    out = []
    for n, value, spread in zip(POPULATIONS, values, spreads):
        jitter = (spread > 0) * 1e-3 * rng.standard_normal((seeds, steps))
        rows = value + spread * rng.standard_normal((seeds, 1)) + jitter
        out.append(clss.Probe(n, SIGMA, np.broadcast_to(rows, (seeds, steps)).copy()))
    return out


def dense_wls(kappa, gap, se):
    """Float64 reference: weighted least squares by lstsq on the whitened design; returns slope, chi^2."""
    design = np.column_stack([kappa, np.ones_like(kappa)]) / se[:, None]
    coef, *_ = np.linalg.lstsq(design, gap / se, rcond=None)
    return coef[0], float(np.sum((design @ coef - gap / se) ** 2))


def test_zero_stderr_is_pooled_from_the_other_populations():
    kappa = SIGMA**2 / np.array(POPULATIONS, dtype=float)
    values = 1.0 - 3.0 * kappa
    values[[0, 2]] += (0.3, 0.05)  # off the line, so the weights change the slope
    probes = synthetic(values, [0.2, 0.1, 0.0, 0.01, 0.005])  # N=16: every seed the same plateau
    result = clss.fit(probes, 0.1)
    assert result.pooled == [16] and [p.stderr_pooled for p in result.plateaus] == [False, False, True, False, False]
    j1 = [clss.tail_means(p.rewards, 2)[0] for p in probes]
    seed_var = np.array([x.var(ddof=1) for x in j1])
    pooled = np.sum(np.delete(seed_var, 2) * 11) / (4 * 11)  # dof-weighted, 12 seeds each
    se = np.array([np.sqrt(v / 12) for v in seed_var])
    se[2] = np.sqrt(pooled / 12)
    plateau = np.array([x.mean() for x in j1])
    slope, chi2 = dense_wls(kappa, plateau[-1] - plateau, se)
    assert result.slope == pytest.approx(slope, rel=1e-6) and result.chi2 == pytest.approx(chi2, rel=1e-6)
    unit_slope, _ = dense_wls(kappa, plateau[-1] - plateau, np.ones(5))
    assert abs(unit_slope - slope) > 0.05 * abs(slope)  # unit weights would have been caught


def test_no_stderr_anywhere_fails_with_its_reason():
    kappa = SIGMA**2 / np.array(POPULATIONS, dtype=float)
    result = clss.fit(synthetic(1.0 - 3.0 * kappa, [0.0] * 5), 0.1)
    assert not result.ok and result.reason.startswith("no population has a nonzero plateau standard error")
    assert np.isnan(result.d_eff)


def test_equal_plateaus_are_not_resolved():
    result = clss.fit(synthetic([0.5] * 5, [0.05] * 5, rng=np.random.default_rng(3)), 0.1)
    assert not result.ok
    assert result.reason.startswith(("slope not resolved", "plateau gap does not grow"))
    assert result.d_eff_ci[0] < 0 < result.d_eff_ci[1] or result.slope <= 0


def test_slope_fit_refuses_unknown_errors():
    with pytest.raises(ValueError, match="finite positive standard errors"):
        slope_fit(np.arange(3.0), np.arange(3.0), np.array([1.0, 0.0, 1.0]))


def drawn_spectra(rng, count, ah_range):
    """Two-block spectra with random D, d, flat eigenvalue and alpha lambda_hi in ah_range."""
    for _ in range(count):
        dim = int(rng.integers(24, 96))
        stiff = int(rng.integers(2, dim // 3))
        alpha = float(rng.uniform(0.2, 0.5))
        lam_hi = float(rng.uniform(*ah_range)) / alpha
        lam_lo = float(rng.uniform(0.1, 0.3)) / alpha * 0.2
        yield cf.two_block_spectrum(dim, stiff, lam_hi, lam_lo), alpha


@pytest.mark.parametrize("ah_range, seeds", [((0.2, 0.6), 8), ((1.5, 1.8), 8), ((1.5, 1.8), 48)])
def test_verdict_is_ok_and_right_on_weak_and_strong_curvature(ah_range, seeds):
    rng = np.random.default_rng(int(1e6 * ah_range[0]) + seeds)
    for lam, alpha in drawn_spectra(rng, 4, ah_range):
        probes = ou_probes(lam, alpha, SIGMA, POPULATIONS, seeds, default_steps(lam, alpha), rng)
        result, expected = clss.fit(probes, alpha), cf.d_eff(lam, alpha)
        se = (result.d_eff_ci[1] - result.d_eff_ci[0]) / (2 * 1.96)
        assert result.ok, result.reason
        assert abs(result.d_eff - expected) < 4 * se and result.d_eff == pytest.approx(expected, rel=0.1)


def test_toy_command_strong_curvature_is_ok(capsys):
    """alpha lambda_hi = 1.8 on 16 stiff modes: d_eff = 209 against the rank 64."""
    argv = ["clss", "--dim", "64", "--stiff", "16", "--lam-hi", "4.5", "--lam-lo", "0.1", "--alpha", "0.4",
            "--sigma", "1", "--seeds", "16"]
    assert main(argv) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.startswith("CLSS ok")
