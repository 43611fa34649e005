"""End to end: the reward probe (Appendix G) on the tiny model writes SCHEMA.md's probe/ group, resumes after
kill -9 to the data of an unbroken run, refuses a file of another configuration, and analysis.best_of_n reads it;
with probe.antithetic it also stores every candidate's twin at -sigma u, which analysis.curvature_moments reads."""
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
MINUS = ("reward_minus", "delta_minus", "bits_minus", "tokens_minus")
ANTITHETIC = ["probe.antithetic=true"]


def probe_cmd(model_dir, out, sets=()):
    cmd = ["-m", "es_hpc", "probe", "--config", str(CONFIG), "--out", str(out), "--set", f"model.path={model_dir}"]
    for s in [*SMALL, *sets]:
        cmd += ["--set", s]
    return cmd


def summary(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])["summary"]


def blocks(path, keys=DATA):
    """Every stored array of the probe (the datasets `keys` of each block), by name."""
    with h5py.File(path, "r") as f:
        out = {"baseline/reward": f["probe/baseline/reward"][()], "baseline/bits": f["probe/baseline/bits"][()]}
        for i in range(2):
            for key in keys:
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
        assert not g.attrs["antithetic"] and "reward_minus" not in g["sigma0/batch0"]


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
    proc = run(probe_cmd(tiny_model_dir, out, ANTITHETIC), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: probe.antithetic: {out / 'probe.h5'} was written with False, this run has True; rerun with the "
        "same configuration to resume, or choose a new --out"]


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


@pytest.fixture(scope="module")
def antithetic(tiny_model_dir, tmp_path_factory):
    """An antithetic probe killed after its third candidate's chunk and resumed (the file of an interrupted run),
    the number of candidates it had stored, the resumed run's summary, and the file of an unbroken run."""
    root = tmp_path_factory.mktemp("antithetic")
    log = root / "broken.log"
    kill_at(log, "k=2-2", start(probe_cmd(tiny_model_dir, root / "a", ANTITHETIC), log))
    with open_file(root / "a" / "probe.h5") as f:
        stored = sum(int(np.sum(~np.isnan(f[f"probe/sigma{i}/batch0/reward"][()]))) for i in range(2))
    assert stored < 12, log.read_text()
    resumed = summary(run(probe_cmd(tiny_model_dir, root / "a", ANTITHETIC)))
    run(probe_cmd(tiny_model_dir, root / "whole", ANTITHETIC))
    return root / "a" / "probe.h5", stored, resumed, root / "whole" / "probe.h5"


def test_antithetic_probe_stores_both_sides(antithetic, whole):
    """The resumed antithetic file has both sides of every candidate, equal to an unbroken antithetic run's; its
    + side is the plain probe's, bit for bit (same seeds, sigmas and pool), its - side a consistent record of other
    weights (theta - sigma u)."""
    path, stored, s, unbroken = antithetic
    assert s["skipped"] == stored and s["evaluated"] == 12 - stored
    plain, both, reference = blocks(whole[0] / "probe.h5"), blocks(path, DATA + MINUS), blocks(unbroken, DATA + MINUS)
    for key in plain:
        assert np.array_equal(plain[key], both[key]), key
    for key in reference:
        assert np.array_equal(reference[key], both[key]), key
    with h5py.File(path, "r") as f:
        assert f["probe"].attrs["antithetic"]
    r0 = both["baseline/reward"]
    for i in range(2):
        reward, bits = both[f"sigma{i}/reward_minus"], np.unpackbits(both[f"sigma{i}/bits_minus"], axis=1, count=16)
        assert np.array_equal(bits.mean(axis=1), reward) and np.array_equal(both[f"sigma{i}/delta_minus"], reward - r0)
        assert np.all(both[f"sigma{i}/tokens_minus"] > 0)
        assert s["sigmas"][i]["mean_delta_minus"] == both[f"sigma{i}/delta_minus"].mean()
    # at sigma = 1e-2 the perturbation changes answers, so a - side evaluated at + sigma u would show as equal bits
    assert not np.array_equal(both["sigma1/bits_minus"], both["sigma1/bits"])


def test_curvature_moments_read_antithetic_probe(antithetic):
    path = antithetic[0]
    proc = run(["-m", "analysis.curvature_moments", str(path), "--json", "--reps", "50"])
    (report,) = json.loads(proc.stdout)
    data = blocks(path, DATA + MINUS)
    for i, row in enumerate(sorted(report["per_sigma"], key=lambda r: r["sigma"])):
        pair_sum = data[f"sigma{i}/delta"] + data[f"sigma{i}/delta_minus"]  # s = dR+ + dR-
        assert row["pairs"] == 6 and row["mean_s"] == pytest.approx(pair_sum.mean(), abs=1e-15)
        assert row["tr_H"]["value"] == pytest.approx(pair_sum.mean() / row["sigma"] ** 2)
