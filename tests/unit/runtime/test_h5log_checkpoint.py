import json

import h5py
import numpy as np
import pytest
import torch

from es_hpc.runtime import checkpoint
from es_hpc.runtime.h5log import H5Log


TABLES = {"train": {"iteration": ((), np.int64), "rewards": ((3,), np.float32), "time/generate": ((), np.float32)},
          "eval": {"iteration": ((), np.int64), "reward": ((), np.float32)}}


def write_rows(log, iterations, evals=()):
    for t in iterations:
        log.append("train", {"iteration": np.int64(t), "rewards": np.full(3, t, np.float32), "time/generate": np.float32(0.5)})
        if t + 1 in evals:
            log.append("eval", {"iteration": np.int64(t + 1), "reward": np.float32(t)})


def test_append_and_resume_truncates_to_checkpoint(tmp_path):
    path = tmp_path / "log.h5"
    log = H5Log(path, {"config": "{}", "world_size": 2}, TABLES)
    write_rows(log, range(7), evals={2, 4, 6})
    log.close()
    with pytest.raises(FileExistsError, match="pass --resume"):
        H5Log(path, {}, TABLES)
    log = H5Log(path, {}, TABLES, resume_iteration=4)  # checkpoint after 4 updates: rows 0-3 and evals <= 4 stay
    with h5py.File(path, "r") as f:
        assert f["train/iteration"][:].tolist() == [0, 1, 2, 3]
        assert f["train/time/generate"].shape == (4,)
        assert f["eval/iteration"][:].tolist() == [2, 4]
    write_rows(log, range(4, 6))
    log.close()
    with h5py.File(path, "r") as f:
        assert f["train/iteration"][:].tolist() == [0, 1, 2, 3, 4, 5]
        assert f["train/rewards"].dtype == np.float32 and f["train/rewards"].shape == (6, 3)
        assert f.attrs["resumed_at"].tolist() == [4] and f.attrs["world_size"] == 2


def save(run, name, value, keep=2, masters=None):
    def save_model(d):
        d.mkdir()
        (d / "model.safetensors").write_text(str(value))  # stand-in payload: only the directory protocol is tested
    return checkpoint.save(run, name, save_model, masters, {"iteration": value}, keep=keep)


def test_checkpoints_latest_pruning_and_replace(tmp_path):
    for i in (1, 2, 3):
        save(tmp_path, f"iter_{i:06d}", i)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["iter_000002", "iter_000003", "latest"]
    assert checkpoint.latest(tmp_path).name == "iter_000003"
    save(tmp_path, "best", 2)
    save(tmp_path, "best", 3)  # replacing an existing checkpoint leaves no temp or old copies
    assert json.loads((root / "best" / checkpoint.STATE).read_text())["iteration"] == 3
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    assert checkpoint.latest(tmp_path).name == "iter_000003"  # best does not move latest


def test_masters_round_trip(tmp_path):
    masters = {"w": torch.randn(4, 4)}
    path = save(tmp_path, "iter_000001", 1, masters=masters)
    state, tensors = checkpoint.load(path)
    assert state["iteration"] == 1 and torch.equal(tensors["w"], masters["w"])


def test_latest_ignores_incomplete(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("iter_000009")  # points at nothing complete
    assert checkpoint.latest(tmp_path) is None
