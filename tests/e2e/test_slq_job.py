"""End to end: the slq job on the tiny model, both operators, into analysis/slq/SCHEMA.md's layout; analysis.slq reads it."""
import json

import h5py
import numpy as np
import pytest
import torch

from analysis.slq.store import read_slq
from es_hpc.jobs.slq import null_permutations
from es_hpc.landscape.curvature import SteinHessian
from helpers import REPO, run

CONFIG = REPO / "configs" / "tiny_slq.yaml"
SMALL = {  # a few matvecs each; stein: steps >= M + 1, so Lanczos reaches the invariant Krylov space
    "hvp": ["slq.probes=2", "slq.steps=5", "slq.prompts=4", "runtime.threads=1"],
    "stein": ["slq.operator=stein", "slq.probes=2", "slq.steps=8", "slq.candidates=4", "slq.prompts=8",
              "runtime.threads=1"],
}


def slq_cmd(model_dir, out, sets=()):
    cmd = ["-m", "es_hpc", "slq", "--config", str(CONFIG), "--checkpoint", str(model_dir), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("slq")
    out = {}
    for kind, sets in SMALL.items():
        proc = run(slq_cmd(tiny_model_dir, root / kind, sets))
        out[kind] = (root / kind / "slq.h5", json.loads(proc.stdout.strip().splitlines()[-1])["summary"])
    return out


def test_hvp_file_schema(runs, tiny_model_dir):
    path, summary = runs["hvp"]
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["config"])["model"]["path"] == str(tiny_model_dir)
        assert f.attrs["perturbed_parameters"] > 1_000_000 and f.attrs["world_size"] == 1
        g = f["slq"]
        assert (g["alpha"].shape, g["beta"].shape, g["probe_norm2"].shape) == ((2, 5), (2, 4), (2,))
        assert g.attrs["n"] == f.attrs["perturbed_parameters"] and g.attrs["kind"] == "hvp"
        assert g.attrs["objective"] == "cross_entropy"  # the stored tridiagonals are the loss's
        np.testing.assert_array_equal(g["probe_norm2"][()], g.attrs["n"])  # Rademacher probes
        alpha = -g["alpha"][()]  # the reward objective's Rayleigh quotients, the sign the summary reports
        assert np.all(np.isfinite(alpha)) and np.all(g["beta"][()] > 0)
        assert len(set(g["prompt_ids"][()])) == 4
    assert summary["objective_stored"] == "cross_entropy" and summary["sign_flipped"]
    s = summary["summaries"]
    # The Ritz values bound every Rayleigh quotient alpha_j of the tridiagonals (negated: the reward's), whose
    # eigenvalues are distinct (beta > 0) and all carry positive weight: mass lies below 0 exactly when a Ritz
    # value does.
    tol = 1e-9 * np.abs(alpha).max()
    assert s["lambda_min"] <= alpha.min() + tol and alpha.max() - tol <= s["lambda_max"]
    assert s["lambda_min"] < s["lambda_max"]
    assert (s["negative_mass"] > 0) == (s["lambda_min"] < 0) and (s["negative_mass"] < 1) == (s["lambda_max"] > 0)
    assert 0 <= s["negative_mass"] <= 1 and s["participation_ratio"] >= 1 and s["effective_rank"] >= 1


def test_stein_matches_its_exact_spectrum(runs):
    path, summary = runs["stein"]
    with h5py.File(path, "r") as f:
        g = f["slq"]
        assert g.attrs["kind"] == "stein" and g.attrs["objective"] == "reward"
        assert g["stein/rewards"].shape == (4,)
        exact = g["stein/eigenvalues"][()]
        assert exact.shape == (4,)
        result = read_slq(f)
        check_null(g, exact)
    assert summary["objective_stored"] == "reward" and not summary["sign_flipped"]
    for nodes, _ in result.quadrature:  # rank M plus a shift: M + 1 steps reach every eigenvalue the eps_i span
        assert np.all(np.min(np.abs(nodes[:, None] - exact[None, :]), axis=0) <= 1e-8 * np.abs(exact).max())
    err = summary["stein"]["relative_error"]
    if summary["stein"]["exact"]["lambda_max"] != summary["stein"]["exact"]["lambda_min"]:  # some reward moved
        assert err["lambda_min"] < 1e-8 and err["lambda_max"] < 1e-8


def check_null(g, exact):
    """slq/stein/null_eigenvalues: slq.null_permutations (default 64) ascending spectra of M eigenvalues. The trace
    of row p, sum_i d_pi(i) |eps_i|^2 / (M sigma^2) + M shift, differs from the real one's only through
    |eps_i|^2 - n (sum_i d_i - d_pi(i) = 0), which for Gaussian eps_i is within 8 sqrt(2 n) of 0."""
    stein, n = g["stein"], int(g.attrs["n"])
    null = stein["null_eigenvalues"][()]
    assert null.shape == (64, 4) and null.dtype == np.float64 and stein.attrs["null_seed"] == g.attrs["seed"]
    assert np.all(np.diff(null, axis=1) >= 0)
    d = stein["rewards"][()] - stein.attrs["reward0"]
    scale = 1.0 / (4 * stein.attrs["sigma"] ** 2)
    for row, perm in zip(null, null_permutations(int(stein.attrs["null_seed"]), 64, 4)):
        bound = scale * np.abs(d - d[perm]).sum() * 8 * np.sqrt(2 * n) + 1e-9 * scale * np.abs(d).sum() * n
        assert abs(row.sum() - exact.sum()) <= bound


def test_null_spectra_are_the_permuted_operators():
    """SteinHessian.null_spectra(perms)[p] is the spectrum on span{eps_i} of the estimator built with d[perms[p]]:
    checked against the dense D x D operator (its other D - M eigenvalues are the shift, unchanged)."""
    rng = np.random.default_rng(0)
    eps, d, sigma = rng.standard_normal((6, 40)), rng.standard_normal(6), 0.1
    stein = SteinHessian(lambda i, t: torch.from_numpy(eps[i]), 1, d, sigma)
    perms = null_permutations(3, 4, 6)
    null = stein.null_spectra(perms).numpy()
    for row, perm in zip(null, perms):
        dense = eps.T @ np.diag(d[perm]) @ eps / (6 * sigma**2) + stein.shift * np.eye(40)
        expected = np.sort(np.append(row, [stein.shift] * 34))
        np.testing.assert_allclose(np.linalg.eigvalsh(dense), expected, rtol=0, atol=1e-9 * np.abs(dense).max())
    np.testing.assert_allclose(stein.null_spectra([np.arange(6)])[0], stein.exact_spectrum()[0], rtol=1e-12)


def test_analysis_reads_both(runs, tiny_model_dir, tmp_path):
    files = [str(runs[k][0]) for k in ("hvp", "stein")]
    run(["-m", "analysis.slq", *files, "--out", str(tmp_path)])
    report = json.loads((tmp_path / "summaries.json").read_text())
    assert [r["label"] for r in report["files"]] == [f"{tiny_model_dir.name} {k}" for k in ("hvp", "stein")]
    for record, kind in zip(report["files"], ("hvp", "stein")):
        assert record["summaries"] == pytest.approx(runs[kind][1]["summaries"], rel=1e-12, nan_ok=True)
        assert (tmp_path / record["density_png"]).read_bytes()[:4] == b"\x89PNG"
    assert "exact_summaries" in report["files"][1] and "exact_summaries" not in report["files"][0]
    null, job_null = report["files"][1]["null_summaries"], runs["stein"][1]["stein"]["null_summaries"]
    assert null.keys() == job_null.keys()
    for key in null:
        assert null[key] == pytest.approx(job_null[key], rel=1e-12, nan_ok=True), key
    assert (tmp_path / "summaries.png").read_bytes()[:4] == b"\x89PNG"


def test_existing_file_is_a_one_line_error(runs, tiny_model_dir):
    path, _ = runs["hvp"]
    before = path.read_bytes()
    proc = run(slq_cmd(tiny_model_dir, path.parent, SMALL["hvp"]), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: --out: {path} already exists; choose a new --out"]
    assert path.read_bytes() == before


def test_stein_refuses_lowrank_noise(tiny_model_dir, tmp_path):
    proc = run(slq_cmd(tiny_model_dir, tmp_path / "out", SMALL["stein"] + ["es.perturbation=lowrank"]), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: es.perturbation: the Stein operator's Hessian estimate needs isotropic Gaussian noise"]
    assert not (tmp_path / "out" / "slq.h5").exists()
