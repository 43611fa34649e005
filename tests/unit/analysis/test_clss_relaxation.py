"""The relaxation time CLSS reports: Eq. 14's known rate on an isotropic spectrum, NaN where nothing relaxes."""

import numpy as np
import pytest

from analysis import clss
from analysis.clss.relaxation import horizon_relaxations, relaxation_steps
from analysis.toy.spectroscopy import ou_probes


@pytest.mark.parametrize("lam, alpha", [(0.1, 0.5), (0.4, 0.25)])
def test_isotropic_ou_rate(lam, alpha):
    """From theta* every mode's variance, so J, relaxes by rho = (1 - alpha lam)^2 per step: tau = 1/(1 - rho) - 1/2."""
    rho = (1 - alpha * lam) ** 2
    expected = 1 / (1 - rho) - 0.5
    probes = ou_probes(np.full(32, lam), alpha, 1.0, (4,), 256, int(12 * expected), np.random.default_rng(3))
    tau = relaxation_steps(probes[0].rewards, int(3 * expected))
    assert tau == pytest.approx(expected, rel=0.15)


def test_no_relaxation_is_nan():
    rng = np.random.default_rng(0)
    assert np.isnan(relaxation_steps(0.5 + 0.01 * rng.standard_normal((8, 40)), 10))
    assert np.isnan(relaxation_steps(np.full((1, 40), 0.5), 10))  # one seed: no standard error
    assert np.isnan(horizon_relaxations(40, [np.nan, np.nan]))
    assert horizon_relaxations(40, [np.nan, 4.0, 8.0]) == 5.0


def test_fit_reports_horizon():
    lam, alpha = np.full(16, 0.2), 0.5
    probes = ou_probes(lam, alpha, 1.0, (4, 8, 16, 32), 32, 200, np.random.default_rng(1))
    result = clss.fit(probes, alpha)
    taus = [p.relaxation for p in result.plateaus]
    assert np.all(np.isfinite(taus)) and result.horizon_relaxations == pytest.approx(200 / max(taus))
    assert result.horizon_relaxations > 10
