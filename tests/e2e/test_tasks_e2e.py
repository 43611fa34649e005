"""The paper's configs run end to end on the project's own dataset fixtures, with the tiny model in place of
Qwen (same loading code); a missing model offline is one line naming the field."""
import json

import h5py
import pytest
import torch

from es_hpc.runtime.checkpoint import MASTER
from helpers import REPO, run

FIXTURES = REPO / "tests" / "fixtures" / "datasets"
TINY = ["es.population=2", "train.prompts_per_iteration=2", "train.iterations=2", "train.eval_every=2",
        "train.eval_prompts=2", "train.checkpoint_every=2", "train.drift_every=0", "generation.max_new_tokens=6",
        "model.dtype=auto"]
CARVE = {"gsm8k": ["task.options.val_size=2"], "arc_challenge": [], "winogrande": ["task.options.val_size=2"],
         "countdown": ["task.options.val_size=2", "task.options.test_size=3"]}


def sets(*assignments: str) -> list[str]:
    return [a for s in assignments for a in ("--set", s)]


def auto_dtype(device: str) -> str:
    """model.dtype auto's rule (README): bfloat16 on a GPU, float32 on the CPU; device auto takes a visible GPU."""
    gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "bfloat16" if gpu else "float32"


@pytest.mark.parametrize("task", list(CARVE))
def test_paper_config_trains_on_fixture(tiny_model_dir, tmp_path, task):
    out = tmp_path / "run"
    proc = run(["-m", "es_hpc", "train", "--config", str(REPO / "configs" / "paper" / f"train_{task}.yaml"),
                "--out", str(out), *sets(f"model.path={tiny_model_dir}", f"task.options.path={FIXTURES / task}",
                                         *TINY, *CARVE[task])])
    assert "iter      1" in proc.stdout and "eval      2  test reward" in proc.stdout
    with h5py.File(out / "es_log.h5", "r") as f:
        assert f.attrs["task"] == task and f["train/rewards"].shape == (2, 2)
        assert f["eval/reward"].shape == (2,) and f["eval/select_reward"].shape == (2,)
        assert set(f["train/rewards"][:].ravel().tolist()) <= {0.0, 0.5, 1.0}  # 0/1 rewards over 2 prompts
        cfg, dtype = json.loads(f.attrs["config"]), f.attrs["dtype"]
    assert cfg["model"]["dtype"] == "auto"  # the config as given
    assert dtype == auto_dtype(cfg["model"]["device"])  # what auto resolved to here, as it ran
    assert cfg["es"]["sigma"] == 1e-3 and cfg["task"]["options"]["path"] == str(FIXTURES / task)
    best = out / "checkpoints" / "best"
    assert (best / "model.safetensors").is_file()
    assert (best / MASTER).is_file() == (dtype != "float32")  # fp32 masters kept beside a rounded model


def test_paper_probe_config_runs_on_fixture(tiny_model_dir, tmp_path):
    out = tmp_path / "probe"
    proc = run(["-m", "es_hpc", "probe", "--config", str(REPO / "configs" / "paper" / "probe_winogrande.yaml"),
                "--out", str(out), *sets(f"model.path={tiny_model_dir}", "model.dtype=auto",
                                         f"task.options.path={FIXTURES / 'winogrande'}", "probe.pool_size=8",
                                         "probe.candidates=2", "probe.batches=1", "probe.sigmas=[1.0e-3]",
                                         "generation.max_new_tokens=4")])
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["summary"]
    assert summary["evaluated"] == 2 and summary["max_abs_drift"] == 0.0
    assert (out / "probe.h5").is_file()


def test_missing_model_offline_is_one_line(tmp_path, monkeypatch):
    """(A missing dataset offline: tests/unit/tasks/test_data.py, in process.)"""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # like a compute node: no hub, only the cache in HF_HOME
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    proc = run(["-m", "es_hpc", "train", "--config", str(REPO / "configs" / "paper" / "train_arc_challenge.yaml"),
                "--out", str(tmp_path / "r"), *sets(f"task.options.path={FIXTURES / 'arc_challenge'}")], check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: model.path: cannot load 'Qwen/Qwen2.5-1.5B-Instruct' from the hub or its cache")
    assert f"HF_HOME (now {tmp_path / 'hf'})" in lines[0] and "local save_pretrained directory" in lines[0]
    assert not (tmp_path / "r" / "es_log.h5").exists()
