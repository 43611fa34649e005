"""analysis.slq against matrices with known spectra (bulk + outliers + negative eigenvalues), Alg. 3 / Eqs. 28-29."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.fft import dct, idct
from scipy.sparse.linalg import LinearOperator

from analysis.slq import SLQResult, density, gauss_quadrature, lanczos, slq, summaries
from analysis.slq.store import read_slq, write_slq

REPO = Path(__file__).resolve().parents[3]
KEYS = ("trace", "lambda_min", "lambda_max", "negative_mass", "participation_ratio", "effective_rank")


def spectrum(n: int) -> np.ndarray:
    """Uniform bulk on [-1, 2] (a third negative), 8 outliers in [5, 12], 4 negative outliers in [-4, -3]."""
    return np.concatenate([np.linspace(-1.0, 2.0, n - 12), np.linspace(5.0, 12.0, 8), np.linspace(-4.0, -3.0, 4)])


def exact_summaries(lam: np.ndarray) -> dict[str, float]:
    """The textbook formulas on an explicit eigenvalue list."""
    p = np.abs(lam) / np.abs(lam).sum()
    return {"trace": lam.sum(), "lambda_min": lam.min(), "lambda_max": lam.max(), "negative_mass": np.mean(lam < 0),
            "participation_ratio": np.abs(lam).sum() ** 2 / (lam**2).sum(),
            "effective_rank": np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))}


def fast_operator(lam: np.ndarray, seed: int) -> LinearOperator:
    """U^T diag(lam) U with U v = DCT(signs * v): a delocalised eigenbasis at O(n log n) per matvec."""
    rng = np.random.default_rng(seed)
    signs, lam = rng.choice([-1.0, 1.0], lam.size), rng.permutation(lam)
    return LinearOperator((lam.size, lam.size), dtype=np.float64,
                          matvec=lambda v: signs * idct(lam * dct(signs * v.ravel(), norm="ortho"), norm="ortho"))


def dense(lam: np.ndarray, seed: int) -> np.ndarray:
    """The matrix of fast_operator(lam, seed), exactly symmetric."""
    a = fast_operator(lam, seed) @ np.eye(lam.size)
    return (a + a.T) / 2


@pytest.fixture(scope="module")
def big():
    """n = 2000 operator and its SLQ at m = 80 steps, 64 Rademacher probes."""
    lam = spectrum(2000)
    op = fast_operator(lam, seed=1)
    return lam, op, slq(op, lam.size, probes=64, steps=80, seed=3)


def test_quadrature_is_exact_for_polynomials_below_degree_2m():
    a, m = dense(spectrum(300), seed=2), 8
    v = np.random.default_rng(0).standard_normal(300)
    nodes, weights = gauss_quadrature(*lanczos(a, v, m))
    q, moments = v / np.linalg.norm(v), []
    for k in range(2 * m):
        moments.append(q @ np.linalg.matrix_power(a, k) @ q)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose([weights @ nodes**k for k in range(2 * m)], moments, rtol=1e-9)


def test_ritz_values_match_eigvalsh_when_m_equals_n():
    a = dense(spectrum(1000), seed=4)
    alpha, beta = lanczos(a, np.random.default_rng(1).choice([-1.0, 1.0], 1000), 1000)
    nodes, _ = gauss_quadrature(alpha, beta)
    eig = np.linalg.eigvalsh(a)
    assert len(alpha) == 1000
    assert abs(nodes.min() - eig.min()) < 1e-6 and abs(nodes.max() - eig.max()) < 1e-6
    assert np.abs(nodes - eig).max() < 1e-6


def test_summaries_of_the_exact_spectrum_are_the_formulas():
    lam = np.concatenate([spectrum(500), np.zeros(5)])
    got = summaries(lam, np.ones(lam.size))
    for key, value in exact_summaries(lam).items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=key)


def test_all_scaled_basis_probes_at_m_equals_n_are_exact():
    """z = sqrt(n) e_i has E[z z^T] = I; all n of them with m = n make every trace functional exact."""
    lam = spectrum(60)
    a = dense(lam, seed=5)
    runs = [lanczos(a, e, 60) for e in np.eye(60)]
    result = SLQResult(alpha=tuple(r[0] for r in runs), beta=tuple(r[1] for r in runs), probe_norm2=np.full(60, 60.0),
                       n=60, probe_dist="basis", seed=0, operator="dense")
    got = result.summaries()
    for key, value in exact_summaries(lam).items():
        np.testing.assert_allclose(got[key], value, rtol=1e-8, atol=1e-10, err_msg=key)


def test_trace_within_three_standard_errors(big):
    lam, _, result = big
    trace, se = result.trace_f(lambda t: t)
    assert 0 < se < 0.02 * abs(lam.sum())
    assert abs(trace - lam.sum()) < 3 * se
    assert result.summaries()["trace"] == pytest.approx(trace, rel=1e-12)


def test_summaries_within_five_percent_at_m80_s64(big):
    lam, _, result = big
    got = result.summaries()
    for key, value in exact_summaries(lam).items():
        assert got[key] == pytest.approx(value, rel=0.05), key
    assert got["lambda_min"] == pytest.approx(lam.min(), abs=1e-6)
    assert got["lambda_max"] == pytest.approx(lam.max(), abs=1e-6)


def test_density_moments(big):
    """Broadened-density moments = SLQ estimates of tr(A^k)/n plus the Gaussian broadening terms; k <= 2 within 5%.

    Higher moments are outlier-dominated: their Hutchinson standard error at 64 probes is itself about 5-7%.
    """
    lam, _, result = big
    nodes, weights = result.measure()
    grid, w = np.linspace(nodes.min() - 1.0, nodes.max() + 1.0, 4001), 0.05
    rho = density(nodes, weights, grid, w)
    integral = [np.trapezoid(grid**k * rho, grid) for k in range(5)]
    m = [result.trace_f(lambda t, k=k: t**k)[0] / lam.size for k in range(5)]
    broadened = [1.0, m[1], m[2] + w**2, m[3] + 3 * w**2 * m[1], m[4] + 6 * w**2 * m[2] + 3 * w**4]
    np.testing.assert_allclose(integral, broadened, rtol=1e-6)
    for k in (1, 2):
        assert m[k] == pytest.approx(np.mean(lam**k), rel=0.05), k


def test_gaussian_probes(big):
    lam, op, _ = big
    result = slq(op, lam.size, probes=64, steps=30, seed=7, dist="gaussian")
    trace, se = result.trace_f(lambda t: t)
    assert not np.allclose(result.probe_norm2, lam.size)
    assert abs(trace - lam.sum()) < 3 * se


def test_breakdown_truncates_and_round_trips_with_nan_padding(tmp_path):
    """A probe inside a 3-dim invariant subspace stops after 3 steps; its quadrature is exact there."""
    lam = spectrum(200)
    a = np.diag(lam)
    short = lanczos(a, np.r_[1.0, 1.0, 1.0, np.zeros(197)], 20)
    full = lanczos(a, np.ones(200), 20)
    assert (len(short[0]), len(short[1]), len(full[0])) == (3, 2, 20)
    np.testing.assert_allclose(np.sort(gauss_quadrature(*short)[0]), lam[:3], atol=1e-12)
    result = SLQResult(alpha=(short[0], full[0]), beta=(short[1], full[1]), probe_norm2=np.array([3.0, 200.0]),
                       n=200, probe_dist="rademacher", seed=0, operator="diag")
    with h5py.File(tmp_path / "b.h5", "w") as f:
        write_slq(f, result)
        assert np.isnan(f["slq/alpha"][0, 3:]).all() and np.isnan(f["slq/beta"][0, 2:]).all()
    with h5py.File(tmp_path / "b.h5", "r") as f:
        back = read_slq(f)
    assert [len(x) for x in back.alpha] == [3, 20] and [len(x) for x in back.beta] == [2, 19]
    assert back.summaries() == result.summaries()


def test_zero_operator_stops_after_one_step():
    """A Stein operator whose candidates all tie (every d_i = 0) is zero: one node at 0, no division by zero."""
    alpha, beta = lanczos(np.zeros((50, 50)), np.ones(50), 10)
    assert alpha.tolist() == [0.0] and beta.size == 0


def test_hdf5_round_trip_resmooths_without_matvecs(big, tmp_path):
    _, _, result = big
    with h5py.File(tmp_path / "r.h5", "w") as f:
        write_slq(f, result)
        g = f["slq"]
        assert (g["alpha"].shape, g["beta"].shape, g["probe_norm2"].shape) == ((64, 80), (64, 79), (64,))
        assert g["alpha"].dtype == g["beta"].dtype == g["probe_norm2"].dtype == np.float64
    with h5py.File(tmp_path / "r.h5", "r") as f:
        back = read_slq(f)
    assert (back.n, back.probe_dist, back.seed, back.operator) == (2000, "rademacher", 3, "matvec")
    for x, y in zip(back.alpha + back.beta, result.alpha + result.beta):
        np.testing.assert_array_equal(x, y)
    assert back.summaries() == result.summaries()
    grid = np.linspace(-5, 13, 500)
    np.testing.assert_array_equal(density(*back.measure(), grid, 0.3), density(*result.measure(), grid, 0.3))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analysis.slq", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)


def test_cli_matrix_json(tmp_path):
    lam = spectrum(300)
    a = dense(lam, seed=6)
    np.save(tmp_path / "A.npy", a)
    out = json.loads(run_cli("--matrix", str(tmp_path / "A.npy"), "--probes", "32", "--steps", "60",
                             "--seed", "9", "--json").stdout)
    eig = np.linalg.eigvalsh(a)
    assert out["lambda_min"] == pytest.approx(eig.min(), abs=1e-6)
    assert out["lambda_max"] == pytest.approx(eig.max(), abs=1e-6)
    assert abs(out["trace"] - lam.sum()) < 3 * out["trace_se"]
    expected = slq(a, 300, probes=32, steps=60, seed=9).summaries()
    assert {k: out[k] for k in expected} == pytest.approx(expected, rel=1e-12)


def test_cli_files_figure17(tmp_path):
    """Three runs (two seeds of model A, one of B) -> per-file densities, one Figure-17 PNG, a JSON of numbers."""
    runs = [("org/model-A", 0, 2000), ("org/model-A", 1, 2000), ("org/model-B", 0, 1000)]
    files, results = [], []
    for i, (model, seed, n) in enumerate(runs):
        lam = spectrum(n)
        results.append(slq(fast_operator(lam, seed), n, probes=8, steps=20, seed=seed))
        files.append(tmp_path / f"run{i}.h5")
        with h5py.File(files[-1], "w") as f:
            f.attrs["model"] = model
            write_slq(f, results[-1])
    out = tmp_path / "out"
    run_cli(*map(str, files), "--out", str(out))
    report = json.loads((out / "summaries.json").read_text())
    assert list(report["labels"]) == ["model-A", "model-B"]
    assert report["labels"]["model-A"]["effective_rank"]["count"] == 2
    for record, result in zip(report["files"], results):
        assert record["summaries"] == pytest.approx(result.summaries(), rel=1e-12)
        assert (out / record["density_png"]).stat().st_size > 0
    assert (out / "summaries.png").read_bytes()[:4] == b"\x89PNG"


def test_library_imports_neither_torch_nor_es_hpc():
    code = "import analysis.slq, analysis.slq.store, sys; assert not {'torch', 'es_hpc'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
