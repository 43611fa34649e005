"""End to end: the reward probe (Appendix G) on the tiny model writes SCHEMA.md's probe/ group, resumes after
kill -9 to the data of an unbroken run, refuses a file of another configuration, and analysis.best_of_n reads it."""
import json

import h5py
import numpy as np
import pytest

from analysis.hdf5 import open_file
from helpers import REPO, kill_at, run, start

CONFIG = REPO / "configs" / "tiny_probe.yaml"
SMALL = ["probe.sigmas=[1e-3, 1e-2]", "probe.batches=1", "probe.candidates=6", "probe.pool_size=16",
         "probe.drift_every=2"]
DATA = ("seeds", "reward", "delta", "bits", "tokens")


def probe_cmd(model_dir, out, sets=()):
    cmd = ["-m", "es_hpc", "probe", "--config", str(CONFIG), "--out", str(out), "--set", f"model.path={model_dir}"]
    for s in [*SMALL, *sets]:
        cmd += ["--set", s]
    return cmd


def summary(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])["summary"]


def blocks(path):
    """Every stored array of the probe, by name."""
    with h5py.File(path, "r") as f:
        out = {"baseline/reward": f["probe/baseline/reward"][()], "baseline/bits": f["probe/baseline/bits"][()]}
        for i in range(2):
            for key in DATA:
                out[f"sigma{i}/{key}"] = f[f"probe/sigma{i}/batch0/{key}"][()]
    return out


@pytest.fixture(scope="module")
def whole(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "whole"
    return out, run(probe_cmd(tiny_model_dir, out))


def test_probe_file_schema(whole, tiny_model_dir):
    out, proc = whole
    s = summary(proc)
    assert s["evaluated"] == 12 and s["skipped"] == 0 and s["max_abs_drift"] == 0
    with h5py.File(out / "probe.h5", "r") as f:
        assert json.loads(f.attrs["config"])["probe"]["candidates"] == 6
        assert f.attrs["perturbed_parameters"] > 0 and f.attrs["model"] == str(tiny_model_dir)
        g = f["probe"]
        assert list(g.attrs["sigmas"]) == [1e-3, 1e-2] and g.attrs["pool_size"] == 16
        assert g["pool_ids"].shape == (16,) and len(set(g["pool_ids"][()])) == 16
        r0, base = g["baseline/reward"][()], np.unpackbits(g["baseline/bits"][()], count=16)
        assert r0 == base.mean() == s["baseline_reward"]
        seeds = []
        for i, sigma in enumerate((1e-3, 1e-2)):
            b = g[f"sigma{i}/batch0"]
            assert b.attrs["sigma"] == sigma
            reward, delta = b["reward"][()], b["delta"][()]
            bits = np.unpackbits(b["bits"][()], axis=1, count=16)
            assert bits.shape == (6, 16) and np.array_equal(bits.mean(axis=1), reward)  # R is the pool mean of r_i
            assert np.array_equal(delta, reward - r0)  # Eq. 52
            assert s["sigmas"][i] == {"sigma": sigma, "mean_delta": delta.mean(), "p_improve": np.mean(delta > 0),
                                      "max_delta": delta.max()}  # the summary states what the file stores
            assert np.all(b["tokens"][()] > 0)
            seeds += list(b["seeds"][()])
        assert len(set(seeds)) == 12 and all(0 <= x < 2**31 for x in seeds)  # independent streams per (sigma, batch)
        drift = g["drift/delta"][()]
        assert drift.size == 1 + 12 // 2 and np.all(drift == 0)  # the start, then every 2 candidates: restore exact


def test_rerun_skips_and_mismatch_is_refused(whole, tiny_model_dir):
    out, _ = whole
    before = blocks(out / "probe.h5")
    s = summary(run(probe_cmd(tiny_model_dir, out)))
    assert s["evaluated"] == 0 and s["skipped"] == 12
    after = blocks(out / "probe.h5")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    proc = run(probe_cmd(tiny_model_dir, out, ["probe.pool_seed=1"]), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: probe.pool_seed: {out / 'probe.h5'} was written with 0, this run has 1; rerun with the same "
        "configuration to resume, or choose a new --out"]


def test_resume_after_kill_equals_unbroken_run(whole, tiny_model_dir, tmp_path):
    out, _ = whole
    log = tmp_path / "broken.log"
    kill_at(log, "k=2-2", start(probe_cmd(tiny_model_dir, tmp_path / "broken"), log))
    with open_file(tmp_path / "broken" / "probe.h5") as f:
        stored = sum(int(np.sum(~np.isnan(f[f"probe/sigma{i}/batch0/reward"][()]))) for i in range(2))
    # killed mid-probe, with what it had flushed kept: every candidate it reported (a "cand" line, one per chunk of
    # one, printed after the flush), perhaps one more flushed but not yet reported
    reported = log.read_text().count("\ncand  ")
    assert reported <= stored <= reported + 1 and stored < 12, log.read_text()
    s = summary(run(probe_cmd(tiny_model_dir, tmp_path / "broken")))
    assert s["skipped"] == stored and s["evaluated"] == 12 - stored
    whole_data, resumed = blocks(out / "probe.h5"), blocks(tmp_path / "broken" / "probe.h5")
    for key in whole_data:
        assert np.array_equal(whole_data[key], resumed[key], equal_nan=False), key
    with h5py.File(tmp_path / "broken" / "probe.h5", "r") as f:
        assert list(f.attrs["resumed_at"]) == [stored]


def test_analysis_reads_it(whole, tmp_path):
    out, _ = whole
    proc = run(["-m", "analysis.best_of_n", str(out / "probe.h5"), "--out", str(tmp_path / "a"), "--ns", "2", "4", "6",
                "--emphasis", "4", "--candidate-reps", "100", "--prompt-reps", "20", "--json"])
    (result,) = json.loads(proc.stdout)
    assert result["ns"] == [2, 4, 6] and result["max_abs_drift"] == 0
    with h5py.File(out / "probe.h5", "r") as f:
        top = np.nanmax(f["probe/sigma0/batch0/delta"][()])
    assert result["sigmas"][0]["curve"][-1]["best"] == pytest.approx(top)  # best-of-M is the pool's maximum
    for png in ("probe_best_of_n", "probe_best_vs_size", "probe_histograms", "probe_sigma"):
        assert (tmp_path / "a" / f"{png}.png").is_file()
