"""Curvature moments from antithetic probes: the estimator against dense formulas and exact quadratic
values, the probe-file path with its locality window, and the toy command."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis import curvature_moments as cm
from analysis.curvature_moments.__main__ import main
from analysis.toy.__main__ import main as toy_main
from analysis.toy.moments import two_block_moments

PNG = b"\x89PNG\r\n\x1a\n"


def test_moments_are_the_documented_formulas():
    rng = np.random.default_rng(1)
    plus, minus, sigma = rng.normal(0.3, 1.0, 50), rng.normal(-0.1, 2.0, 50), 0.2
    plus[7] = np.nan  # an unfinished pair is dropped
    est, _ = cm.moments(plus, minus, sigma, reps=50)
    p, m = np.delete(plus, 7), np.delete(minus, 7)
    s, a = p + m, p - m
    tr_h = np.sum(s) / s.size / sigma**2
    tr_h2 = np.sum((s - s.mean()) ** 2) / (s.size - 1) / (2 * sigma**4)
    assert est["pairs"] == 49
    assert est["tr_H"]["value"] == pytest.approx(tr_h, rel=1e-12)
    assert est["tr_H2"]["value"] == pytest.approx(tr_h2, rel=1e-12)
    assert est["grad_sq"]["value"] == pytest.approx(np.sum((a - a.mean()) ** 2) / 48 / (4 * sigma**2), rel=1e-12)
    assert est["eff_dim"]["value"] == pytest.approx(tr_h**2 / tr_h2, rel=1e-12)
    lo, hi = est["tr_H"]["ci"]
    assert lo < tr_h < hi


def test_quadratic_estimates_within_10_percent():
    """D = 4000, K = 10, M = 240 on drawn spectra: tr H within 10% per draw; the second moments, whose
    relative error is sqrt(2 / M) = 9% per draw, within 4 bootstrap SE per draw and 10% on average."""
    rng = np.random.default_rng(17)
    ratios = []
    for seed in range(8):
        lam_hi, lam_lo, sigma = rng.uniform(2, 8), rng.uniform(0.05, 0.3), 10 ** rng.uniform(-3, -1)
        r = two_block_moments(4000, 10, lam_hi, lam_lo, sigma, 240, seed=seed, reps=300)
        assert r["tr_H"] == pytest.approx(r["tr_H_exact"], rel=0.1) and r["tr_H_exact"] < 0
        for name in ("tr_H2", "grad_sq", "eff_dim"):
            lo, hi = r[f"{name}_ci"]
            assert abs(r[name] - r[f"{name}_exact"]) < 4 * (hi - lo) / (2 * 1.96)
        ratios.append([r[n] / r[f"{n}_exact"] for n in ("tr_H2", "grad_sq", "eff_dim")])
    assert np.all(np.abs(np.mean(ratios, axis=0) - 1) < 0.1)


def reward(theta, lam, quartic):
    """1 - theta^T C theta / 2 - quartic |theta|^4 over the last axis: quadratic for small theta."""
    return 1.0 - 0.5 * (theta**2) @ lam - quartic * np.sum(theta**2, axis=-1) ** 2


def write_probe(path, sigmas, lam, quartic=0.0, m=400, antithetic=True, seed=0):
    """An antithetic probe file (best_of_n SCHEMA) of the reward above at theta0, one batch per sigma."""
    rng = np.random.default_rng(seed)
    theta0 = 0.1 * rng.standard_normal(lam.size) / np.sqrt(lam.size)
    r0 = reward(theta0, lam, quartic)
    with h5py.File(path, "w") as f:
        f.attrs["model"] = "toy/quadratic"
        g = f.create_group("probe")
        g.attrs.update(sigmas=np.array(sigmas), batches=1, candidates=m, antithetic=antithetic)
        for i, sigma in enumerate(sigmas):
            eps = rng.standard_normal((m, lam.size))
            b = g.create_group(f"sigma{i}/batch0")
            b.attrs.update(sigma=sigma, sigma_index=i, batch=0)
            b["delta"] = reward(theta0 + sigma * eps, lam, quartic) - r0
            b["delta_minus"] = reward(theta0 - sigma * eps, lam, quartic) - r0
    return path


def test_cli_reports_moments_window_and_figure(tmp_path, capsys):
    lam = np.r_[np.full(5, 4.0), np.full(195, 0.2)]
    path = write_probe(tmp_path / "probe.h5", [0.01, 0.03, 0.1, 0.6], lam, quartic=0.001)
    assert main([str(path), "--json", "--out", str(tmp_path / "out"), "--reps", "300"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    rows = sorted(report["per_sigma"], key=lambda r: r["sigma"])
    assert report["model"] == "quadratic"
    assert rows[0]["tr_H"]["value"] == pytest.approx(-lam.sum(), rel=0.05)
    assert [r["local"] for r in rows] == [True, True, True, False]  # the quartic term shows at sigma = 0.6
    assert report["scaling"]["window_sigma_max"] == 0.1
    assert report["scaling"]["exponents"]["mean_s"][0] > 2.0  # the sigma^4 term bends E[s] upwards
    assert (tmp_path / "out/curvature_moments.png").read_bytes().startswith(PNG)
    assert json.loads(Path(tmp_path / "out/curvature_moments.json").read_text())[0]["model"] == "quadratic"


def test_scaling_exponents_on_a_pure_quadratic(tmp_path, capsys):
    lam = np.r_[np.full(5, 4.0), np.full(195, 0.2)]
    main([str(write_probe(tmp_path / "p.h5", [0.01, 0.05, 0.2], lam)), "--json", "--reps", "300"])
    (report,) = json.loads(capsys.readouterr().out)
    for key, expected in report["scaling"]["expected"].items():
        slope, se = report["scaling"]["exponents"][key]
        assert abs(slope - expected) < 4 * se + 1e-9
    assert all(r["local"] for r in report["per_sigma"])


def test_non_antithetic_file_is_an_error(tmp_path, capsys):
    path = write_probe(tmp_path / "p.h5", [0.01], np.ones(10), antithetic=False)
    assert main([str(path)]) == 2
    assert "not antithetic" in capsys.readouterr().err


def test_toy_moments_command(capsys):
    argv = ["moments", "--dim", "4000", "--stiff", "10", "--lam-hi", "5", "--lam-lo", "0.1", "--sigma", "0.01",
            "--candidates", "240", "--seed", "3", "--json"]
    assert toy_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"tr_H", "tr_H2", "grad_sq", "eff_dim", "tr_H_exact", "eff_dim_exact"} <= set(report)
    assert report["tr_H_exact"] == pytest.approx(-(10 * 5 + 3990 * 0.1))
