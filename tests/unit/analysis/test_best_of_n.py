"""analysis.best_of_n on constructed pools with known answers: exact best-of-N against enumeration, Monte Carlo
within its SE, batch SE, candidate bootstrap, N90, q0.95, the prompt bootstrap, and the probe/ HDF5 layout."""

import itertools
import json

import h5py
import numpy as np
import pytest

from analysis import best_of_n as bon
from analysis.best_of_n.__main__ import main


def brute_force(x, n):
    return np.mean([max(c) for c in itertools.combinations(x, n)])


@pytest.mark.parametrize("m", [1, 5, 9, 12])
def test_exact_equals_enumeration(m):
    rng = np.random.default_rng(m)
    x = np.round(rng.normal(size=m), 2)  # rounding makes ties, as 0/1 rewards on a pool do
    x[: m // 3] = x[-1]
    for n in range(1, m + 1):
        assert bon.expected_best_of_n(x, n) == pytest.approx(brute_force(x, n), abs=1e-12, rel=0)


def test_exact_known_values_and_limits():
    x = np.zeros(10)
    x[3] = 1.0  # one improving candidate among M = 10: P(it is in an n-subset) = n / M
    for n in (1, 4, 10):
        assert bon.expected_best_of_n(x, n) == pytest.approx(n / 10, abs=1e-15)
    y = np.arange(240) / 240.0  # large M stays exact: best-of-1 is the mean, best-of-M the max
    assert bon.expected_best_of_n(y, 1) == pytest.approx(y.mean(), abs=1e-14)
    assert bon.expected_best_of_n(y, 240) == y.max()
    assert bon.expected_best_of_n(np.r_[y, np.nan], 240) == y.max()  # NaN: not probed yet
    with pytest.raises(ValueError, match="1 <= n <= M"):
        bon.expected_best_of_n(y[:5], 6)


def test_monte_carlo_within_its_standard_error():
    x = np.random.default_rng(1).standard_t(3, size=48)
    for n in (5, 10, 30):
        exact = bon.expected_best_of_n(x, n)
        mc, se = bon.mc_best_of_n(x, n, subsets=2000, rng=n)
        assert 0 < se < 0.1
        assert abs(mc - exact) < 3 * se
    # the SE is honest: over 200 repetitions the spread of the MC means matches the reported SE
    means, ses = zip(*(bon.mc_best_of_n(x, 10, subsets=200, rng=r) for r in range(200)))
    assert np.std(means) == pytest.approx(np.mean(ses), rel=0.2)


def test_curve_mean_and_se_across_batches():
    a, b = np.zeros(10), np.zeros(10)
    a[0] = 0.5  # best-of-n: 0.5 * n / 10
    b[:2] = 0.5  # best-of-n: 0.5 * (1 - C(8, n) / C(10, n))
    rows = bon.best_of_n_curve([a, b], [2, 5], r0=0.75)
    for row in rows:
        n = row["N"]
        va, vb = 0.5 * n / 10, 0.5 * (1 - (10 - n) * (9 - n) / 90)
        assert row["per_batch"] == pytest.approx([va, vb], abs=1e-15)
        assert row["best"] == pytest.approx((va + vb) / 2)
        assert row["se"] == pytest.approx(abs(va - vb) / 2)  # sd(ddof=1) of two values / sqrt 2
        assert row["ci95"] == pytest.approx(1.96 * row["se"])
        assert row["best_rel"] == pytest.approx(row["best"] / 0.25)  # headroom 1 - R0
    assert np.isnan(bon.mean_se([0.3])[1])  # one batch: no SE
    assert np.isnan(bon.headroom(1.0))


def test_candidate_bootstrap():
    v = (np.arange(1000) % 10 < 3).astype(float)  # p = 0.3 exactly
    out = bon.bootstrap(v, lambda x: np.mean(x > 0), reps=1000, rng=0)
    assert out["value"] == 0.3
    assert out["se"] == pytest.approx(np.sqrt(0.3 * 0.7 / 1000), rel=0.15)
    assert out["ci"][0] < 0.3 < out["ci"][1] and out["ci"][1] - out["ci"][0] == pytest.approx(4 * out["se"], rel=0.2)
    const = bon.bootstrap(np.full(50, -0.125), np.mean, reps=100, rng=0)
    assert const == {"value": -0.125, "se": 0.0, "ci": [-0.125, -0.125]}


def test_n90():
    assert bon.n90([5, 10, 20, 30, 50], [0.1, 0.5, 0.85, 0.9, 1.0]) == 30
    assert bon.n90([5, 10, 20], [0.95, 0.99, 1.0]) == 5
    assert np.isnan(bon.n90([5, 10], [-0.2, -0.1]))  # no improvement to saturate


def write_probe(path, r0_bits, cand_bits, sigmas, model="models/tiny", parameters=1000):
    """A probe/ group in SCHEMA.md's layout from 0/1 arrays: baseline (P,), candidates (n_sigma, S, M, P)."""
    n_sigma, S, M, P = cand_bits.shape
    r0 = r0_bits.mean()
    with h5py.File(path, "w") as f:
        f.attrs.update(model=model, perturbed_parameters=parameters, config=json.dumps({}))
        g = f.create_group("probe")
        g.attrs.update(sigmas=np.array(sigmas), batches=S, candidates=M, pool_size=P, pool_seed=0, split="train",
                       base_seed=1234, drift_every=0)
        g["pool_ids"] = np.arange(P)
        g["baseline/reward"] = r0
        g["baseline/bits"] = np.packbits(r0_bits)
        for i in range(n_sigma):
            for s in range(S):
                b = g.create_group(f"sigma{i}/batch{s}")
                b.attrs.update(sigma=sigmas[i], sigma_index=i, batch=s)
                reward = cand_bits[i, s].mean(axis=1)
                b["seeds"], b["reward"], b["delta"] = np.arange(M), reward, reward - r0
                b["bits"] = np.packbits(cand_bits[i, s], axis=-1)
                b["tokens"] = np.full(M, 7)
        g["drift/delta"] = np.zeros(3)


def test_probe_file_round_trip_and_statistics(tmp_path):
    P, M = 200, 100
    base = np.zeros(P, dtype=np.uint8)
    base[:100] = 1  # R0 = 0.5
    cand = np.tile(base, (2, 1, M, 1))  # 2 sigmas, S = 1
    for k in range(M):
        cand[0, 0, k, 100:100 + k] = 1  # sigma 0: candidate k gains k prompts, dR = k / 200
        cand[1, 0, k, :1 + k % 2] = 0  # sigma 1: every candidate loses 1 or 2 prompts
    write_probe(tmp_path / "p.h5", base, cand, [1e-3, 1e-2])
    probe = bon.read_probe(tmp_path / "p.h5")
    assert probe.label == "tiny" and probe.parameters == 1000 and probe.r0 == 0.5 and probe.sigmas == [1e-3, 1e-2]
    assert np.array_equal(probe.base_bits, base) and np.array_equal(probe.bits[0][0], cand[0, 0])
    assert np.allclose(probe.deltas[0][0], np.arange(M) / 200)

    r = bon.analyse(probe, ns=[5, 10, 50], emphasis=30, candidate_reps=200, prompt_reps=50)
    assert r["emphasis"] == 50  # 30 is not among the N evaluated: the largest is used
    up, down = r["sigmas"]
    assert up["q95_rel"] == pytest.approx(np.quantile(np.arange(M) / 200, 0.95) / 0.5)
    assert up["p_improve"]["value"] == 0.99 and up["mean_delta"]["value"] == pytest.approx(0.2475)
    assert up["curve"][0]["best"] == pytest.approx((M + 1) * 5 / 6 / 200 - 1 / 200)
    # x = k/200: E[max of N] = ((M+1) N/(N+1) - 1)/200, so 0.9 of N=50's value is first reached at N=10
    assert up["n90"] == 10
    assert down["p_improve"]["value"] == 0 and down["mean_delta"]["value"] == pytest.approx(-0.0075)
    assert np.isnan(down["n90"])
    pb = down["prompt_bootstrap"]  # robustness check: resampled prompts can only lose, never gain
    assert pb["p_improve"]["ci"] == [0.0, 0.0] and pb["mean_delta"]["mean"] == pytest.approx(-0.0075, abs=0.002)
    assert up["prompt_bootstrap"]["mean_delta"]["ci"][0] < 0.2475 < up["prompt_bootstrap"]["mean_delta"]["ci"][1]


def test_cli_combines_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, params in (("small", 1000), ("large", 8000)):
        base = (rng.random(32) < 0.4).astype(np.uint8)
        cand = np.where(rng.random((3, 2, 12, 32)) < 0.1, 1 - base, base).astype(np.uint8)
        write_probe(tmp_path / f"{name}.h5", base, cand, [1e-4, 1e-3, 1e-2], model=f"m/{name}", parameters=params)
    out = tmp_path / "out"
    status = main([str(tmp_path / "large.h5"), str(tmp_path / "small.h5"), "--out", str(out), "--ns", "2", "5", "10",
                   "--emphasis", "5", "--candidate-reps", "50", "--prompt-reps", "20", "--json"])
    assert status == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results] == ["small", "large"]  # ordered by model size
    assert all(len(r["sigmas"]) == 3 and r["ns"] == [2, 5, 10] for r in results)
    for png in ("probe_best_of_n", "probe_best_vs_size", "probe_histograms", "probe_sigma"):
        assert (out / f"{png}.png").stat().st_size > 10_000
    lines = (out / "best_of_n.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 3 * 3 and lines[1].startswith("small,1000,0.0001,")
    assert len((out / "summary.csv").read_text().splitlines()) == 1 + 2 * 3

    assert main([str(tmp_path / "small.h5"), "--out", str(out), "--ns", "20"]) == 2  # N > M
    assert "exceeds the 12 candidates" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.h5"), "--out", str(out)]) == 2
