"""Train jobs with generation.backend: vllm through the real CLI (subprocesses): the rewards, zero baseline drift and
bit-identical final weights of the transformers backend; a signal's checkpoint and --resume equal to the unbroken
run; two torchrun ranks, each driving its own engine, equal to one process and leaving cleanly; bench's switch
figures."""
import json
import math
import signal
import sys

import h5py
import numpy as np
import pytest

from helpers import DEADLINE, TINY_CONFIG, final_weights, rewards, run, same_bits, start, train_cmd, wait_for

SETS = ["train.iterations=3"]
VLLM = [*SETS, "generation.backend=vllm"]


@pytest.fixture(scope="module")
def whole(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("vllm_jobs") / "whole"
    run(train_cmd(tiny_model_dir, out, VLLM))
    return out


def test_the_same_run_as_transformers(whole, tiny_model_dir, tmp_path):
    run(train_cmd(tiny_model_dir, tmp_path / "hf", SETS))
    assert np.array_equal(rewards(whole), rewards(tmp_path / "hf")) and len(np.unique(rewards(whole))) > 1
    assert same_bits(final_weights(whole), final_weights(tmp_path / "hf"))
    with h5py.File(whole / "es_log.h5", "r") as f:
        assert f.attrs["noise"] in ("native-openmp", "torch")
        assert np.all(f["train/baseline_drift"][:] == 0)  # restore in the engine is exact


def test_signal_checkpoint_and_resume(whole, tiny_model_dir, tmp_path):
    log = tmp_path / "broken.log"
    proc = start(train_cmd(tiny_model_dir, tmp_path / "broken", VLLM), log)
    wait_for(log, "es_hpc train:", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE) == 75, log.read_text()[-3000:]
    assert "preempted: stopped by a signal" in log.read_text()
    run(train_cmd(tiny_model_dir, tmp_path / "broken", VLLM, resume=True))
    assert np.array_equal(rewards(tmp_path / "broken"), rewards(whole))
    assert same_bits(final_weights(tmp_path / "broken"), final_weights(whole))


def test_two_torchrun_ranks_each_with_an_engine(whole, tiny_model_dir, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = run(train_cmd(tiny_model_dir, tmp_path / "two", VLLM), launcher=torchrun)
    assert "2 rank(s)" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]  # each engine shut down before the group went
    assert np.array_equal(rewards(tmp_path / "two"), rewards(whole))
    assert same_bits(final_weights(tmp_path / "two"), final_weights(whole))


def test_bench_switch_figures(tiny_model_dir):
    """bench --json on the vLLM backend: a member's switch (perturb + restore in the workers), its es_hpc and platform
    parts, and the whole-model reload path it replaced, measured in the same run."""
    proc = run(["-m", "es_hpc", "bench", "--config", str(TINY_CONFIG), "--set", f"model.path={tiny_model_dir}",
                "--set", "generation.backend=vllm", "--reduced", "--json"])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    whole, es, platform = (r[f"switch{k}_seconds_per_member"] for k in ("", "_es_hpc", "_platform"))
    assert r["backend"] == "vllm" and all(math.isfinite(v) and v > 0 for v in (whole, es, platform))
    assert es + platform <= whole  # both parts are timed inside the wall-clock switch
    assert r["reload_path_seconds_per_member"] > 2 * r["reload_seconds"] > 0
    assert r["switch_ratio"] == whole / r["reload_path_seconds_per_member"]
    assert r["switch_es_hpc_ratio"] == es / r["reload_path_seconds_per_member"]
