"""analysis.slq's sign convention (every spectrum in the reward's sign) on a known quadratic, and the Stein
null band (dR permuted among candidates) against dense float64 Stein spectra."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from analysis.slq import slq, summaries
from analysis.slq.__main__ import main
from analysis.slq.store import read_exact, read_null, write_slq

KEYS = ("lambda_min", "lambda_max", "negative_mass", "participation_ratio", "effective_rank")


def exact_summaries(lam):
    """The textbook formulas on an explicit list of all n eigenvalues (float64)."""
    p = np.abs(lam) / np.abs(lam).sum()
    return {"trace": lam.sum(), "lambda_min": lam.min(), "lambda_max": lam.max(), "negative_mass": np.mean(lam < 0),
            "participation_ratio": np.abs(lam).sum() ** 2 / (lam**2).sum(),
            "effective_rank": np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))}


def write(path, matrix, steps, **attrs):
    """An slq/ group of the dense matrix (probes 6, the given Lanczos steps) with the given slq/ attributes."""
    with h5py.File(path, "w") as f:
        f.attrs["model"] = path.stem
        g = write_slq(f, slq(matrix, matrix.shape[0], probes=6, steps=steps, seed=2))
        g.attrs.update(attrs)
    return path


def report_of(files, tmp_path):
    main([*map(str, files), "--out", str(tmp_path / "out")])
    return json.loads((tmp_path / "out/summaries.json").read_text())["files"]


def test_cross_entropy_spectra_are_reported_in_the_reward_sign(tmp_path):
    """J = 1 - theta^T C theta / 2: the reward Hessian is -C; the cross-entropy-like hvp operator stores +C."""
    lam = np.r_[np.linspace(0.5, 2.0, 27), 9.0, 10.0, 12.0]
    c = np.diag(lam)
    hvp = write(tmp_path / "hvp.h5", c, 30, kind="hvp")  # objective implied by kind
    tagged = write(tmp_path / "tagged.h5", c, 30, objective="cross_entropy")
    reward = write(tmp_path / "reward.h5", -c, 30, objective="reward")
    bare = write(tmp_path / "bare.h5", c, 30)
    r_hvp, r_tagged, r_reward, r_bare = report_of([hvp, tagged, reward, bare], tmp_path)
    assert r_hvp["summaries"]["lambda_max"] == pytest.approx(-lam.min(), rel=1e-9)
    assert r_hvp["summaries"]["lambda_min"] == pytest.approx(-lam.max(), rel=1e-9)
    assert r_hvp["summaries"]["negative_mass"] == 1.0 and r_hvp["sign_flipped"]
    for other in (r_tagged, r_reward):
        assert other["summaries"] == pytest.approx(r_hvp["summaries"], rel=1e-9)
    assert not r_reward["sign_flipped"] and r_reward["reported_as"] == "reward"
    assert r_bare["reported_as"].startswith("as stored") and r_bare["summaries"]["lambda_min"] > 0


def stein_eigenvalues(eps, d, sigma):
    """Dense reference: eigenvalues of G^1/2 diag(d) G^1/2 / (M sigma^2) + shift, G = eps eps^T, and the shift."""
    m = len(d)
    w, v = np.linalg.eigh(eps @ eps.T)
    root = (v * np.sqrt(np.maximum(w, 0))) @ v.T
    shift = -d.sum() / (m * sigma**2)
    return np.linalg.eigvalsh(root @ np.diag(d) @ root) / (m * sigma**2) + shift, shift


def stein_file(path, eps, d, sigma, permutations, rng):
    """A Stein slq/ file: SLQ of the dense H = eps^T diag(d) eps / (M sigma^2) + shift I, its exact spectrum
    and the null spectra of d permuted (SCHEMA.md)."""
    n, m = eps.shape[1], eps.shape[0]
    eig, shift = stein_eigenvalues(eps, d, sigma)
    h = eps.T @ np.diag(d) @ eps / (m * sigma**2) + shift * np.eye(n)
    write(path, (h + h.T) / 2, 12, kind="stein")
    null = np.array([stein_eigenvalues(eps, rng.permutation(d), sigma)[0] for _ in range(permutations)])
    with h5py.File(path, "a") as f:
        g = f.create_group("slq/stein")
        g.attrs.update(shift=shift, sigma=sigma, candidates=m, null_seed=0)
        g["eigenvalues"] = eig
        g["null_eigenvalues"] = null
    return path


def test_null_reproduces_the_spectrum_of_a_pure_noise_reward(tmp_path):
    rng = np.random.default_rng(4)
    eps, sigma = rng.standard_normal((24, 400)), 0.05
    d = 0.01 * rng.standard_normal(24)  # dR carry no information about eps
    path = stein_file(tmp_path / "noise.h5", eps, d, sigma, 200, rng)
    with h5py.File(path, "r") as f:
        real = summaries(*read_exact(f))
        null = [summaries(*m) for m in read_null(f)]
        stored, shift = f["slq/stein/null_eigenvalues"][()], f["slq/stein"].attrs["shift"]
    textbook = exact_summaries(np.r_[stored[7], np.full(400 - 24, shift)])  # dense: all n eigenvalues listed
    assert null[7] == pytest.approx(textbook, rel=1e-12)
    for key in KEYS:
        values = [row[key] for row in null]
        assert min(values) <= real[key] <= max(values), key
    (record,) = report_of([path], tmp_path)
    band = record["null_summaries"]
    for key in KEYS:
        assert band[key]["lo"] - 1e-12 <= band[key]["mean"] <= band[key]["hi"] + 1e-12
        assert record["exact_summaries"][key] == pytest.approx(real[key], rel=1e-12)


def test_at_few_candidates_an_informative_reward_stays_inside_the_null(tmp_path):
    """M = 24 << D = 400: dR of a quadratic with 3 stiff modes (lambda = 200 against 0.1) still give a
    spectrum inside the permutation band, whose extreme eigenvalue is over 50x the true -200: at M << D the
    Stein spectrum shows D and the dR histogram, not which direction is curved (README)."""
    rng = np.random.default_rng(5)
    eps, sigma = rng.standard_normal((24, 400)), 0.05
    lam = np.r_[np.full(3, 200.0), np.full(397, 0.1)]
    d = -0.5 * sigma**2 * (eps**2) @ lam
    (record,) = report_of([stein_file(tmp_path / "quad.h5", eps, d, sigma, 200, rng)], tmp_path)
    for key in ("lambda_min", "participation_ratio", "effective_rank"):
        band = record["null_summaries"][key]
        assert band["lo"] <= record["exact_summaries"][key] <= band["hi"], key
    assert record["exact_summaries"]["lambda_min"] < 50 * -200.0
