"""End to end: the slq job on the tiny model, both operators, into analysis/slq/SCHEMA.md's layout; analysis.slq reads it."""
import json

import h5py
import numpy as np
import pytest

from analysis.slq.store import read_slq
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
        np.testing.assert_array_equal(g["probe_norm2"][()], g.attrs["n"])  # Rademacher probes
        alpha = g["alpha"][()]
        assert np.all(np.isfinite(alpha)) and np.all(g["beta"][()] > 0)
        assert len(set(g["prompt_ids"][()])) == 4
    s = summary["summaries"]
    # The Ritz values bound every Rayleigh quotient alpha_j of the stored tridiagonals, whose eigenvalues are
    # distinct (beta > 0) and all carry positive weight: mass lies below 0 exactly when a Ritz value does.
    tol = 1e-9 * np.abs(alpha).max()
    assert s["lambda_min"] <= alpha.min() + tol and alpha.max() - tol <= s["lambda_max"]
    assert s["lambda_min"] < s["lambda_max"]
    assert (s["negative_mass"] > 0) == (s["lambda_min"] < 0) and (s["negative_mass"] < 1) == (s["lambda_max"] > 0)
    assert 0 <= s["negative_mass"] <= 1 and s["participation_ratio"] >= 1 and s["effective_rank"] >= 1


def test_stein_matches_its_exact_spectrum(runs):
    path, summary = runs["stein"]
    with h5py.File(path, "r") as f:
        g = f["slq"]
        assert g.attrs["kind"] == "stein" and g["stein/rewards"].shape == (4,)
        exact = g["stein/eigenvalues"][()]
        assert exact.shape == (4,)
        result = read_slq(f)
    for nodes, _ in result.quadrature:  # rank M plus a shift: M + 1 steps reach every eigenvalue the eps_i span
        assert np.all(np.min(np.abs(nodes[:, None] - exact[None, :]), axis=0) <= 1e-8 * np.abs(exact).max())
    err = summary["stein"]["relative_error"]
    if summary["stein"]["exact"]["lambda_max"] != summary["stein"]["exact"]["lambda_min"]:  # some reward moved
        assert err["lambda_min"] < 1e-8 and err["lambda_max"] < 1e-8


def test_analysis_reads_both(runs, tiny_model_dir, tmp_path):
    files = [str(runs[k][0]) for k in ("hvp", "stein")]
    run(["-m", "analysis.slq", *files, "--out", str(tmp_path)])
    report = json.loads((tmp_path / "summaries.json").read_text())
    assert [r["label"] for r in report["files"]] == [f"{tiny_model_dir.name} {k}" for k in ("hvp", "stein")]
    for record, kind in zip(report["files"], ("hvp", "stein")):
        assert record["summaries"] == pytest.approx(runs[kind][1]["summaries"], rel=1e-12, nan_ok=True)
        assert (tmp_path / record["density_png"]).read_bytes()[:4] == b"\x89PNG"
    assert "exact_summaries" in report["files"][1] and "exact_summaries" not in report["files"][0]
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
