"""The reproduction report's measurements and verdict rules: dense references for the spectrum summary and the
per-batch best-of-N, the smoothed peak on curves with a known peak, and each rule's three outcomes."""
import numpy as np
import pytest

from analysis import best_of_n as bon
from analysis.reproduce import claims, measure
from analysis.reproduce.claims import FAILS, HOLDS, OPEN


def test_bulk_outliers_of_a_dense_spectrum():
    """A bulk of 990 eigenvalues in [-1, 1] and 10 at 100-200: the 90% edge, the ratio and the 1% stiff mass."""
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(-1, 1, 990), np.linspace(100, 200, 10)])
    s = measure._bulk_outliers(lam, np.ones_like(lam))
    assert s["lambda_abs_max"] == 200 and s["bulk"] == pytest.approx(np.quantile(np.abs(lam), 0.9), abs=0.01)
    assert s["stiff_fraction"] == pytest.approx(0.01) and s["ratio"] > 100


def test_batch_curves_are_best_of_n_over_headroom():
    rng = np.random.default_rng(1)
    d = rng.normal(0, 0.05, (3, 40))
    d[1, 5] = np.nan  # not yet probed: dropped
    curve = bon.best_of_n_curve([row[~np.isnan(row)] for row in d], [1, 10, 30], 0.2)
    got = measure.batch_curves(curve, r0=0.2)
    row = d[1][~np.isnan(d[1])]
    assert got.shape == (3, 3)
    assert got[1, 1] == pytest.approx(bon.expected_best_of_n(row, 10) / 0.8)
    assert got[0, 0] == pytest.approx(d[0].mean() / 0.8)  # best-of-1 is the mean


def test_smooth_keeps_a_constant_and_finds_a_peak():
    assert np.allclose(measure.smooth(np.full(20, 0.3), 5), 0.3)
    t = np.arange(200)
    y = 0.3 + 0.2 * np.exp(-((t - 60) / 30.0) ** 2) + np.random.default_rng(2).normal(0, 0.01, t.size)
    ys = measure.smooth(y, 21)
    assert abs(int(np.argmax(ys)) - 60) <= 5


def _run(peak_at, length=200, noise=0.01, seed=0, height=0.2):
    """A measure.rise_decay-shaped record of a curve peaking at `peak_at` (or rising to the end)."""
    t = np.arange(1, length + 1)
    y = 0.3 + height * np.exp(-((t - peak_at) / 40.0) ** 2) + np.random.default_rng(seed).normal(0, noise, t.size)
    width = (length // 10) | 1
    ys = measure.smooth(y, width)
    se = float(np.std(y - ys, ddof=1) / np.sqrt(width))
    k, h = int(np.argmax(ys)), width // 2
    near = t[ys >= ys[k] - se]
    return {"t_peak": int(t[k]), "t_peak_range": [int(near.min()), int(near.max())], "peak": float(ys[k]),
            "start": float(ys[h]), "final": float(ys[-1 - h]), "passed": bool(t[k] < t[-1 - h]), "se": se,
            "iterations": length}


def test_rise_then_decay_rule():
    assert claims.rise_then_decay({10: _run(60), 30: _run(100)})["verdict"] == HOLDS
    assert claims.rise_then_decay({10: _run(60), 30: _run(260)})["verdict"] == OPEN  # still rising at the end
    for seed in range(5):  # noise alone is no peak
        assert claims.rise_then_decay({10: _run(100, height=0.0, seed=seed)})["verdict"] == OPEN
    plateau = _run(60)  # rose, then stayed
    plateau["final"] = plateau["peak"]
    assert claims.rise_then_decay({10: plateau})["verdict"] == FAILS


def test_peak_shift_rule():
    assert claims.peak_shift({10: _run(60, height=0.1), 30: _run(120, height=0.2)})["verdict"] == HOLDS
    assert claims.peak_shift({10: _run(120, height=0.2), 30: _run(60, height=0.1)})["verdict"] == FAILS
    assert claims.peak_shift({10: _run(60), 30: _run(62, seed=1)})["verdict"] == OPEN
    assert "no peak" in claims.peak_shift({10: _run(60), 30: _run(120)})["rule"]  # the toy's N = 30 has none


def _size(params, n90s, sigmas=(1e-3, 3e-3, 1e-2), best=(0.02, 0.1, -0.2), p=(0.1, 0.3, 0.2), m=120):
    """A measure.probe_size-shaped record."""
    n90 = measure.mean_ci(n90s)
    return {"parameters": params, "candidates": m, "emphasis": 30, "ns": list(range(1, 51)), "sigmas": [
        {"sigma": s, "best": (b, 0.01), "n90": n90, "n90_batches": list(n90s), "q95_rel": 0.1,
         "p_improve": (q, q - 0.05, q + 0.05), "mean_delta": (-0.01, -0.02, 0.0), "curve": [0.0] * 50}
        for s, b, q in zip(sigmas, best, p)]}


def test_saturation_rule():
    flat = {"xs": _size(1e5, [20, 22, 19, 21, 20]), "l": _size(2e6, [21, 19, 20, 22, 18])}
    assert claims.saturation(flat)["verdict"] == HOLDS
    growing = {"xs": _size(1e5, [10, 11, 9, 10, 12]), "l": _size(2e6, [45, 47, 44, 46, 48])}
    assert claims.saturation(growing)["verdict"] == FAILS
    small_m = {k: {**v, "candidates": 24} for k, v in flat.items()}
    assert claims.saturation(small_m)["verdict"] == OPEN


def test_window_and_accessibility_rules():
    inside = {"xs": _size(1e5, [20] * 5), "l": _size(2e6, [20] * 5)}
    assert claims.window(inside)["verdict"] == HOLDS
    edge = {"xs": _size(1e5, [20] * 5, best=(0.3, 0.1, -0.2))}
    assert claims.window(edge)["verdict"] == FAILS
    assert claims.accessibility(inside)["verdict"] == HOLDS
    never = {"xs": _size(1e5, [20] * 5, p=(0.0, 0.0, 0.0))}
    assert claims.accessibility(never)["verdict"] == FAILS
