"""`python -m es_hpc export` on a real train run: the folder loads with the Auto classes, holds the checkpoint's
weights bit for bit and generates as the checkpoint does; its model card's numbers are the log's (read here with
h5py); best, latest and iter_N pick their checkpoints; an existing --out, a missing run or checkpoint and a bad
name are one-line errors with exit code 2."""
import json

import h5py
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers import run, train_cmd


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    run(train_cmd(tiny_model_dir, out, ["train.keep_best=true"]))
    return out


def export(run_dir, out, *extra, check=True):
    proc = run(["-m", "es_hpc", "export", str(run_dir), "--out", str(out), *extra], check=check)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if check else proc


def card(folder) -> tuple[dict, str]:
    """The model card's front matter and its text."""
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.removeprefix("---\n").partition("\n---\n")[0]), text


@torch.no_grad()
def greedy(folder) -> list[int]:
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    text = tok.apply_chat_template([{"role": "user", "content": "12+34="}], add_generation_prompt=True, tokenize=False)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    return model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist()


def test_latest_loads_generates_and_equals_the_checkpoint(run_dir, tmp_path):
    out = tmp_path / "model"
    done = export(run_dir, out)
    ckpt = run_dir / "checkpoints" / "iter_000002"
    assert done["checkpoint"] == str(ckpt) and done["iteration"] == 2
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    weights = load_file(str(ckpt / "model.safetensors"))
    params = dict(model.named_parameters())
    assert params.keys() == weights.keys() and all(torch.equal(params[k], weights[k]) for k in weights)
    tokens = greedy(out)
    assert tokens and tokens == greedy(ckpt)
    assert not (out / "es_state.json").exists()


def test_the_model_card_is_the_logs(run_dir, tmp_path):
    out = tmp_path / "model"
    export(run_dir, out)
    meta, text = card(out)
    es = meta["es_hpc"]
    with h5py.File(run_dir / "es_log.h5", "r") as f:
        attrs = dict(f.attrs)
        mean = f["train/rewards"][:].mean(axis=1)
        it, reward, select = (f[f"eval/{k}"][:] for k in ("iteration", "reward", "select_reward"))
    assert es["config"] == json.loads(attrs["config"]) and es["git_commit"] == attrs["git_commit"]
    assert (es["model"], es["task"], es["checkpoint"], es["iteration"]) == (attrs["model"], "arithmetic",
                                                                              "iter_000002", 2)
    assert es["train_reward"]["start"] == float(mean[0]) and es["train_reward"]["final"] == float(mean[-1])
    assert es["train_reward"]["best"] == float(mean.max())
    held = es["eval_reward"]
    assert (held["start"], held["best"], held["final"]) == (float(reward[0]), float(reward.max()), float(reward[-1]))
    assert held["kept_iteration"] == int(it[np.argmax(select)]) and held["this_checkpoint"] == float(reward[-1])
    assert f"{held['start']:.4f}" in text and f"{held['final']:.4f}" in text
    assert all(f"lm_eval --model {m} --model_args pretrained={out}," in text for m in ("hf", "vllm"))


def test_best_and_iter_n(run_dir, tmp_path):
    best = json.loads((run_dir / "checkpoints" / "best" / "es_state.json").read_text())["best_iteration"]
    assert export(run_dir, tmp_path / "best", "--checkpoint", "best")["iteration"] == best
    assert card(tmp_path / "best")[0]["es_hpc"]["checkpoint"] == "best"
    export(run_dir, tmp_path / "one", "--checkpoint", "iter_1")
    one = run_dir / "checkpoints" / "iter_000001"
    a, b = (load_file(str(d / "model.safetensors")) for d in (tmp_path / "one", one))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_refusals_are_one_line(run_dir, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    cases = [(run_dir, taken, [], "already exists"), (tmp_path / "nope", tmp_path / "a", [], "no run directory"),
             (run_dir, tmp_path / "a", ["--checkpoint", "iter_9"], "no complete checkpoint"),
             (run_dir, tmp_path / "a", ["--checkpoint", "last"], "best, latest or iter_N")]
    for src, out, extra, message in cases:
        proc = export(src, out, *extra, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "a").exists() and not list(taken.iterdir())
