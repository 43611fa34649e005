"""End to end: the train CLI on the tiny model writes a valid HDF5 log and checkpoints, resumes exactly."""
import json

import h5py
import numpy as np
import pytest
from transformers import AutoModelForCausalLM

from analysis.hdf5 import open_file
from helpers import final_weights, kill_at, rewards, run, same_bits, start, train_cmd


@pytest.fixture(scope="module")
def two_iter_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    proc = run(train_cmd(tiny_model_dir, out))
    return out, proc


def test_log_schema(two_iter_run):
    out, proc = two_iter_run
    assert "iter      1" in proc.stdout and "eval      2" in proc.stdout
    assert proc.stdout.index("iter      0") < proc.stdout.index("eval      1")  # an iteration, then its evaluation
    with h5py.File(out / "es_log.h5", "r") as f:
        cfg = json.loads(f.attrs["config"])
        assert cfg["es"]["population"] == 4 and f.attrs["world_size"] == 1
        for key in ("es_hpc_version", "torch_version", "transformers_version", "git_commit"):
            assert f.attrs[key]
        t = f["train"]
        assert t["seeds"].shape == (2, 4) and t["seeds"].dtype == np.uint64
        assert t["rewards"].shape == (2, 4) and t["rewards"].dtype == np.float32
        assert t["signs"].dtype == np.int8 and t["iteration"][:].tolist() == [0, 1]
        assert np.all((t["rewards"][:] >= 0) & (t["rewards"][:] <= 1))
        assert t["sigma"][:].tolist() == pytest.approx([3e-3, 3e-3])
        assert np.all(t["tokens"][:] > 0)
        assert t["prompt_ids"].shape == (2, 8) and t["prompt_bits"].shape == (2, 4, 1)
        per_prompt = np.unpackbits(t["prompt_bits"][:], axis=2)[:, :, :8]
        assert np.array_equal(per_prompt.mean(2).astype(np.float32), t["rewards"][:])
        assert t["comm_bytes"][:].tolist() == [0, 0]  # one process communicates nothing
        assert t["baseline_drift"][:].tolist() == [0.0, 0.0]
        for phase in ("perturb", "generate", "score", "restore", "exchange", "update"):
            assert t[f"time/{phase}"].shape == (2,)
        assert np.all(t["time/generate"][:] > 0)
        assert f["eval/iteration"][:].tolist() == [0, 1, 2]
        assert f["eval/reward"].dtype == np.float32 and f["eval/select_reward"].shape == (3,)


def test_checkpoint_loads_with_from_pretrained(two_iter_run, tiny_model_dir):
    """The checkpoint is the model ES moved: every parameter (es.params: all) changed, unless every iteration's
    members tied (z-scored equal rewards weigh 0, so the update is exactly zero and nothing may change)."""
    out, _ = two_iter_run
    ckpt = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    assert ckpt.name == "iter_000002"
    state = json.loads((ckpt / "es_state.json").read_text())
    assert state["iteration"] == 2
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for (n, p), (_, q) in zip(model.named_parameters(), base.named_parameters()) if not p.equal(q)]
    moved = any(len(set(r)) > 1 for r in rewards(out))
    assert len(changed) == (len(list(base.parameters())) if moved else 0)
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_train_curve_summary_and_png(two_iter_run):
    out, _ = two_iter_run
    proc = run(["-m", "analysis.train_curve", str(out / "es_log.h5"), "--png", str(out / "curve.png"), "--json"])
    summary = json.loads(proc.stdout)
    assert summary["iterations_logged"] == 2 and summary["max_baseline_drift"] == 0.0
    assert (out / "curve.png").stat().st_size > 10_000


def test_same_config_same_rewards(two_iter_run, tiny_model_dir, tmp_path):
    out, _ = two_iter_run
    run(train_cmd(tiny_model_dir, tmp_path / "again"))
    assert np.array_equal(rewards(out), rewards(tmp_path / "again"))
    assert same_bits(final_weights(out), final_weights(tmp_path / "again"))


def test_resume_after_kill_is_the_unbroken_run(tiny_model_dir, tmp_path):
    sets = ["train.iterations=12", "train.checkpoint_every=3", "train.eval_every=4"]
    run(train_cmd(tiny_model_dir, tmp_path / "whole", sets))

    broken, log = tmp_path / "broken", tmp_path / "broken.log"
    kill_at(log, "iter      3", start(train_cmd(tiny_model_dir, broken, sets), log))  # after checkpoint iter_000003
    done = int((broken / "checkpoints" / "latest").read_text().split("_")[1])
    with open_file(broken / "es_log.h5") as f:  # the crash left a readable, partial log
        assert 3 <= done <= f["train/rewards"].shape[0] < 12  # a row is logged before its checkpoint

    resumed = run(train_cmd(tiny_model_dir, broken, sets, resume=True))
    assert "resumed from" in resumed.stdout
    assert np.array_equal(rewards(broken), rewards(tmp_path / "whole"))
    assert same_bits(final_weights(broken), final_weights(tmp_path / "whole"))
    with h5py.File(broken / "es_log.h5", "r") as f, h5py.File(tmp_path / "whole" / "es_log.h5", "r") as g:
        assert f["train/iteration"][:].tolist() == list(range(12))
        assert f["eval/iteration"][:].tolist() == g["eval/iteration"][:].tolist()
        assert np.array_equal(f["eval/reward"][:], g["eval/reward"][:])
        assert len(f.attrs["resumed_at"]) == 1
