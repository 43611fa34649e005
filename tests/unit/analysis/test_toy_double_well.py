"""Double well of Appendix E: hysteresis hop counting, Eyring-Kramers (Eqs. 42-47), Eq. 43, Eq. 50."""

import numpy as np
import pytest

from analysis.toy import double_well as dw

LAM, A, ALPHA, N = 1.0, 1.0, 0.05, 8


def sigma_for(ratio, alpha=ALPHA):
    """sigma giving the barrier-to-noise ratio Delta L / epsilon of Eq. 48."""
    return np.sqrt(LAM * A**4 * N / (2 * alpha * ratio))


def test_closed_forms_of_the_quartic_well():
    assert dw.barrier(2.0, 1.5) == pytest.approx(2.0 / 4 * 1.5**4)  # Eq. 45 = L(0) - L(a)
    assert dw.barrier(2.0, 1.5) == pytest.approx(dw.loss(0.0, 2.0, 1.5) - dw.loss(1.5, 2.0, 1.5))
    h = 1e-4  # Eq. 46 against finite differences of Eq. 44
    for x, exact in zip((1.5, 0.0), dw.curvatures(2.0, 1.5)):
        second = (dw.loss(x + h, 2.0, 1.5) - 2 * dw.loss(x, 2.0, 1.5) + dw.loss(x - h, 2.0, 1.5)) / h**2
        assert second == pytest.approx(exact, rel=1e-6)
    assert dw.barrier_to_noise(LAM, A, ALPHA, sigma_for(3.0), N) == pytest.approx(3.0)


def test_hysteresis_counts_only_full_crossings():
    path = np.array([[-1.0, -0.4, 0.4, 0.6, 0.2, -0.3, -0.6, 0.55],   # hops at steps 3, 6, 7
                     [0.0, 0.3, 0.7, 0.1, -0.45, -0.2, 0.0, 0.3],     # first commitment (step 2) is not a hop
                     [1.0, 0.6, 0.0, -0.49, 0.1, 0.9, 1.2, 0.8]])     # never reaches -0.5: no hop
    hops = dw.count_hops(path.T, a=1.0, margin=0.5)
    np.testing.assert_array_equal(hops.count, [3, 0, 0])
    np.testing.assert_array_equal(hops.first, [3, np.inf, np.inf])
    np.testing.assert_array_equal(hops.final, path[:, -1])


@pytest.fixture(scope="module")
def hopping():
    """2000 runs at Delta L / epsilon = 3 for three Eyring-Kramers times."""
    sigma = sigma_for(3.0)
    mean_escape = dw.escape_steps(LAM, A, ALPHA, sigma, N)
    steps = int(3 * mean_escape)
    hops = dw.count_hops(dw.runs(LAM, A, ALPHA, sigma, N, 2000, steps, np.random.default_rng(1)), A)
    return hops, mean_escape, steps


def test_mean_escape_time_matches_eyring_kramers(hopping):
    hops, mean_escape, steps = hopping
    assert mean_escape == pytest.approx(2 * np.pi / (ALPHA * np.sqrt(2)) * np.exp(3.0))  # Eq. 47
    measured = dw.mean_escape_estimate(hops, steps)  # about 1800 hops: 2.4% statistical error
    assert measured / mean_escape == pytest.approx(1.0, abs=0.2)  # Eq. 42 is leading order in eps / Delta L


def test_hop_probability_matches_eq43(hopping):
    hops, mean_escape, _ = hopping
    for horizon in (0.3 * mean_escape, mean_escape, 2 * mean_escape):
        assert np.mean(hops.first <= horizon) == pytest.approx(dw.hop_probability(horizon, mean_escape), abs=0.06)


def test_regimes_of_figure9():
    steps, seeds = 3000, 200
    fractions = []
    for ratio in (20.0, 3.5, 0.7):
        sigma = sigma_for(ratio)
        hops = dw.count_hops(dw.runs(LAM, A, ALPHA, sigma, N, seeds, steps, np.random.default_rng(2)), A)
        fractions.append(np.mean(hops.count > 0))
        if ratio == 3.5:
            predicted = dw.hop_probability(steps, dw.escape_steps(LAM, A, ALPHA, sigma, N))
            assert fractions[-1] == pytest.approx(predicted, abs=0.1)
        if ratio == 0.7:
            assert np.mean(hops.count) > 10  # delocalized: frequent crossings
    assert fractions[0] == 0.0 and fractions[2] == 1.0


def test_within_well_variance_eq50():
    alpha = 0.02
    sigma = sigma_for(50.0, alpha)  # deep well: no hops; anharmonic and step-size corrections ~ 2%
    states = np.stack(list(dw.runs(LAM, A, alpha, sigma, N, 400, 3000, np.random.default_rng(4))))
    assert states[1000:].var() == pytest.approx(dw.well_variance(LAM, A, alpha, sigma, N), rel=0.05)
