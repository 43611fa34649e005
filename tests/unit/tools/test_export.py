"""es_hpc.tools.export on a run directory made here (checkpoints by runtime.checkpoint, the log by the train job's
writer with known rewards): the checkpoint each --checkpoint names, the model card's numbers and provenance against
what the log holds, only the model's files exported (no ES state, no fp32 masters), and the refusals."""
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from es_hpc import config
from es_hpc.config import ConfigError
from es_hpc.jobs.train_state import log_tables
from es_hpc.runtime import checkpoint
from es_hpc.runtime.h5log import H5Log
from es_hpc.tools.export import export, find_checkpoint

REWARDS = np.array([[0.1, 0.3, 0.2, 0.0], [0.4, 0.5, 0.3, 0.2], [0.2, 0.2, 0.1, 0.1]], dtype=np.float32)  # T x N
EVALS = [(0, 0.25, 0.3), (2, 0.5, 0.2), (3, 0.375, 0.6)]  # (iteration, held-out reward, selection reward)
ATTRS = {"model": "org/base-model", "task": "arithmetic", "git_commit": "0123abc", "world_size": 2,
         "dtype": "bfloat16", "backend": "transformers"}
SETS = ["es.population=4", "train.iterations=3", "train.eval_every=1", "train.keep_best=true"]


def write_log(path, cfg, attrs) -> None:
    """A train log of REWARDS (and EVALS when cfg evaluates), the other columns zero."""
    tables = log_tables(cfg)
    log = H5Log(path, {"config": cfg.to_json(), **attrs}, tables)
    zeros = {t: {k: np.zeros(shape, dtype) for k, (shape, dtype) in cols.items()} for t, cols in tables.items()}
    for t, r in enumerate(REWARDS):
        log.append("train", dict(zeros["train"], iteration=np.int64(t), rewards=r, baseline_drift=np.float32(0)))
    for it, reward, select in EVALS if "eval" in tables else []:
        log.append("eval", dict(zeros["eval"], iteration=np.int64(it), reward=np.float32(reward),
                                select_reward=np.float32(select)))
    log.close()


def make_run(root, tiny_model_dir, sets=SETS, attrs=ATTRS):
    """A run directory: the log, checkpoints iter_000002, iter_000003 (latest) and best (iteration 3), each the tiny
    model's files with fp32 masters beside them, as a bfloat16 run writes them."""
    cfg = config.load(None, sets)
    root.mkdir()
    write_log(root / cfg.log.file, cfg, attrs)

    def save_model(d):
        shutil.copytree(tiny_model_dir, d)
    masters = {"model.norm.weight": torch.ones(128)}
    for name, it in (("iter_000002", 2), ("iter_000003", 3), ("best", 3)):
        checkpoint.save(root, name, save_model, masters, {"iteration": it, "config": cfg.to_json()})
    return root


def front_matter(text: str) -> dict:
    head, sep, _ = text.removeprefix("---\n").partition("\n---\n")
    assert text.startswith("---\n") and sep
    return yaml.safe_load(head)


@pytest.fixture
def run_dir(tmp_path, tiny_model_dir):
    return make_run(tmp_path / "run", tiny_model_dir)


def test_checkpoint_names(run_dir):
    ckpts = run_dir / "checkpoints"
    assert find_checkpoint(run_dir, "latest") == ckpts / "iter_000003"
    assert find_checkpoint(run_dir, "best") == ckpts / "best"
    assert find_checkpoint(run_dir, "iter_2") == find_checkpoint(run_dir, "iter_000002") == ckpts / "iter_000002"
    (ckpts / "iter_000004").mkdir()  # being written: no es_state.json yet
    with pytest.raises(FileNotFoundError, match="no complete checkpoint .*iter_000004"):
        find_checkpoint(run_dir, "iter_4")
    with pytest.raises(ConfigError, match="best, latest or iter_N, got 'last'"):
        find_checkpoint(run_dir, "last")
    shutil.rmtree(ckpts / "best")
    with pytest.raises(FileNotFoundError, match="keep_best"):
        find_checkpoint(run_dir, "best")
    with pytest.raises(FileNotFoundError, match="not a train run directory"):
        find_checkpoint(run_dir / "checkpoints", "latest")


def test_export_writes_the_model_files_and_a_card_from_the_log(run_dir, tmp_path, tiny_model_dir):
    out = tmp_path / "exported"
    done = export(run_dir, out, "latest")
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(done["files"]) and "README.md" in files and "model.safetensors" in files
    assert not {checkpoint.STATE, checkpoint.MASTER, "tiny_model.json"} & set(files)  # the run's, not the model's
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp directory left
    saved, original = (load_file(str(d / "model.safetensors")) for d in (out, tiny_model_dir))
    assert saved.keys() == original.keys() and all(torch.equal(saved[k], original[k]) for k in saved)
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    es = meta["es_hpc"]
    assert meta["base_model"] == "org/base-model" and meta["library_name"] == "transformers"
    assert (es["checkpoint"], es["iteration"], es["iterations_logged"]) == ("iter_000003", 3, 3)
    assert {k: es[k] for k in ATTRS} == ATTRS and es["config"] == json.loads(config.load(None, SETS).to_json())
    mean = REWARDS.mean(axis=1)
    assert es["train_reward"] == {"start": float(mean[0]), "best": float(mean[1]), "best_iteration": 1,
                                  "final": float(mean[2]), "max_baseline_drift": 0.0}
    assert es["eval_reward"] == {"split": "test", "start": 0.25, "best": 0.5, "best_iteration": 2, "final": 0.375,
                                 "kept_iteration": 3, "kept_reward": 0.375, "select_split": "val",
                                 "kept_select_reward": float(np.float32(0.6)), "this_checkpoint": 0.375}
    assert all(f"lm_eval --model {m} --model_args pretrained={out}," in card for m in ("hf", "vllm"))


def test_a_run_without_evaluations_from_a_local_model(tmp_path, tiny_model_dir):
    """No eval/ table (train.eval_every 0): the card has the training curve only; a local model is no Hub
    base_model."""
    run = make_run(tmp_path / "run", tiny_model_dir, ["es.population=4", "train.eval_every=0"],
                   dict(ATTRS, model=str(tiny_model_dir)))
    export(run, tmp_path / "a", "iter_2")
    card = (tmp_path / "a" / "README.md").read_text()
    es = front_matter(card)["es_hpc"]
    assert "base_model" not in front_matter(card) and es["model"] == str(tiny_model_dir) and es["iteration"] == 2
    assert "eval_reward" not in es and es["train_reward"]["final"] == float(REWARDS.mean(axis=1)[-1])
    assert "| held-out | not logged |" in card


def test_refusals(run_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        export(run_dir, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep"]
    with pytest.raises(FileNotFoundError, match="no run directory"):
        export(tmp_path / "missing", tmp_path / "a")
    (run_dir / "es_log.h5").unlink()
    with pytest.raises(FileNotFoundError, match="no train log"):
        export(run_dir, tmp_path / "a")
    assert not (tmp_path / "a").exists()
