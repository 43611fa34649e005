"""End to end: the clss probe job on the tiny model writes analysis/clss/SCHEMA.md's layout, and analysis.clss reads it."""
import json

import h5py
import numpy as np
import pytest

from helpers import REPO, run

CONFIG = REPO / "configs" / "tiny_clss.yaml"
# T = 4 steps: analysis.clss's default tail window T // 4 must be >= 1.
SMALL = ["clss.populations=[2, 4]", "clss.trajectories=2", "clss.steps=4", "clss.prompts_per_step=8"]


def clss_cmd(model_dir, out, sets=()):
    cmd = ["-m", "es_hpc", "clss", "--config", str(CONFIG), "--checkpoint", str(model_dir), "--out", str(out)]
    for s in [*SMALL, *sets]:
        cmd += ["--set", s]
    return cmd


@pytest.fixture(scope="module")
def probe_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clss") / "c"
    proc = run(clss_cmd(tiny_model_dir, out))
    return out, proc


def test_clss_file_schema(probe_run, tiny_model_dir):
    out, proc = probe_run
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["summary"]
    assert summary["trajectories"] == 4
    with h5py.File(out / "clss.h5", "r") as f:
        cfg = json.loads(f.attrs["config"])
        assert cfg["clss"]["populations"] == [2, 4] and cfg["model"]["path"] == str(tiny_model_dir)
        for key in ("es_hpc_version", "torch_version", "transformers_version", "git_commit"):
            assert f.attrs[key]
        assert f.attrs["world_size"] == 1 and f.attrs["perturbed_parameters"] > 0
        assert sorted(f["clss"]) == ["N2", "N4"]
        for n in (2, 4):
            g = f[f"clss/N{n}"]
            assert g.attrs["population"] == n
            assert g.attrs["sigma"] == cfg["es"]["sigma"] and g.attrs["alpha"] == cfg["es"]["alpha"] > 0
            rewards, distance = g["rewards"][()], g["distance"][()]
            assert rewards.shape == distance.shape == (2, 4)
            assert rewards.dtype == distance.dtype == np.float32
            assert np.all((rewards >= 0) & (rewards <= 1))
            check_distance(g, rewards, distance)
            check_member_rewards(g, rewards, n)
            assert g["trajectory_seed"][0] != g["trajectory_seed"][1]  # independent trajectories


def check_distance(g, rewards, distance):
    """||theta_t - theta*|| against what the trajectory recorded. Step t adds alpha/(N sigma) sum_k (r_k - J) eps_k
    (raw shaping, baseline J = J(theta_{t-1}) on the fixed pool): it is non-zero, and in ~1e6 dimensions nearly
    orthogonal to theta_{t-1} - theta*, wherever the members' mean differs from J, so the distance grows there and
    never shrinks; where it is still 0, theta_t = theta* and J on the fixed pool is the start's."""
    assert g.attrs["shaping"] == "raw" and g.attrs["baseline"] and g.attrs["fixed_prompts"]
    start = g["start_reward"][()][:, None]
    baseline = np.concatenate([start, rewards[:, :-1]], axis=1)  # J(theta_{t-1}), step t's baseline
    before = np.concatenate([np.zeros_like(start), distance[:, :-1]], axis=1)  # theta_0 = theta*: distance 0
    assert np.all(distance >= 0) and np.all(distance - before >= -1e-3 * distance)
    moving = g["population_mean"][()] != baseline
    assert np.all(distance[moving] > before[moving])
    unmoved = distance == 0
    assert np.array_equal(rewards[unmoved], np.broadcast_to(start, rewards.shape)[unmoved])


def check_member_rewards(g, rewards, n):
    """Each update's raw member rewards (R, T, N), rewards on the prompt pool in [0, 1], whose mean is the stored
    population mean, and the baseline each update subtracted: J(theta_{t-1}) on the fixed pool, i.e. the start's
    reward for the first update and the previous column of `rewards` after it."""
    assert (g.attrs["shaping"], g.attrs["update_form"], bool(g.attrs["baseline"])) == ("raw", "eq1", True)
    members, baseline = g["member_rewards"][()], g["baseline_rewards"][()]
    assert members.shape == (2, 4, n) and baseline.shape == (2, 4)
    assert members.dtype == baseline.dtype == np.float32
    assert np.all((members >= 0) & (members <= 1))
    np.testing.assert_allclose(members.astype(np.float64).mean(axis=2), g["population_mean"][()], rtol=1e-6)
    expected = np.concatenate([g["start_reward"][()][:, None], rewards[:, :-1]], axis=1)
    np.testing.assert_array_equal(baseline, expected)


def test_analysis_reads_it(probe_run):
    out, _ = probe_run
    proc = run(["-m", "analysis.clss", str(out / "clss.h5"), "--json"], check=False)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert {"ok", "reason", "alpha", "d_eff"} <= set(result)
    assert result["ok"] == (proc.returncode == 0)
    assert result["kappa_source"] == "measured"  # auto: every subgroup carries member rewards
    if not result["ok"]:
        assert result["reason"]


def test_bad_clss_config_is_one_line(tiny_model_dir, tmp_path):
    proc = run(clss_cmd(tiny_model_dir, tmp_path / "x", ["clss.populations=[4, 0]"]), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: clss.populations[1]: must be > 0, got 0"]


def test_antithetic_is_refused(tiny_model_dir, tmp_path):
    proc = run(clss_cmd(tiny_model_dir, tmp_path / "x", ["es.antithetic=true"]), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: es.antithetic: the clss job runs without antithetic sampling (member_rewards cannot describe the "
        "pairs' weights; analysis/clss/SCHEMA.md)"]
    assert not (tmp_path / "x" / "clss.h5").exists()
