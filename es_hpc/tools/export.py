"""`python -m es_hpc export RUN_DIR --out DIR [--checkpoint best|latest|iter_N]`: one checkpoint of a train run as
a from_pretrained folder (the weights the run evaluated, config, tokenizer) with a model card, README.md, whose
numbers are read from the run's HDF5 log and whose provenance is the log's (config, base model, task, commit)."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import yaml

from analysis.hdf5 import complete_rows, open_file
from analysis.train_curve import summarize

from ..config import ConfigError
from ..models import FACTS
from ..runtime import atomic, checkpoint

# es_hpc task -> the lm-evaluation-harness task of the same benchmark (the other tasks have none)
LM_EVAL_TASKS = {"gsm8k": "gsm8k", "arc_challenge": "arc_challenge", "winogrande": "winogrande"}
ES_FILES = (checkpoint.STATE, checkpoint.MASTER, FACTS)  # the run's own files, not part of the exported model
PROVENANCE = ("model", "task", "git_commit", "es_hpc_version", "torch_version", "transformers_version", "backend",
              "dtype", "perturbation", "noise", "world_size", "perturbed_parameters")


def find_checkpoint(run_dir: Path, which: str) -> Path:
    """The complete checkpoint `which` (best, latest, iter_N) of a run; FileNotFoundError naming what is missing."""
    if not (run_dir / "checkpoints").is_dir():
        raise FileNotFoundError(f"export: {run_dir} is not a train run directory (no checkpoints/ in it)")
    if which == "latest":
        found = checkpoint.latest(run_dir)
        if found is None:
            raise FileNotFoundError(f"export: no complete checkpoint under {run_dir / 'checkpoints'}")
        return found
    match = re.fullmatch(r"iter_(\d+)", which)
    if which != "best" and match is None:
        raise ConfigError(f"export: --checkpoint must be best, latest or iter_N, got {which!r}")
    path = run_dir / "checkpoints" / (which if match is None else f"iter_{int(match[1]):06d}")
    if not (path / checkpoint.STATE).is_file():
        raise FileNotFoundError(f"export: no complete checkpoint {path}"
                                + (" (the run did not keep one: train.keep_best)" if which == "best" else ""))
    return path


def _plain(value):
    """An HDF5 attribute as a plain Python value (for JSON and YAML)."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def log_numbers(log: Path, iteration: int) -> dict:
    """From the train log: its provenance attributes, the population-mean training reward's start, best and final
    values, and the held-out curve's (analysis.train_curve.summarize) with the exported iteration's own reward."""
    with open_file(log) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        train = complete_rows(f["train"], ("iteration", "rewards", "baseline_drift"))
        ev = complete_rows(f["eval"], ("iteration", "reward")) if "eval" in f else {"iteration": []}
    out = {"config": json.loads(attrs["config"]), **{k: attrs[k] for k in PROVENANCE if k in attrs},
           "iterations_logged": len(train["iteration"])}
    if len(train["iteration"]):
        mean = train["rewards"].mean(axis=1)
        k = int(np.argmax(mean))
        out["train_reward"] = {"start": float(mean[0]), "best": float(mean[k]),
                               "best_iteration": int(train["iteration"][k]), "final": float(mean[-1]),
                               "max_baseline_drift": float(np.nanmax(np.abs(train["baseline_drift"]), initial=0.0))}
    if len(ev["iteration"]):
        s = summarize(str(log))
        k = int(np.argmax(ev["reward"]))
        held = {"split": s["eval_split"], "start": s["initial_reward"], "best": float(ev["reward"][k]),
                "best_iteration": int(ev["iteration"][k]), "final": s["final_reward"]}
        if "select_split" in s:
            held.update(kept_iteration=s["kept_iteration"], kept_reward=s["kept_reward"],
                        select_split=s["select_split"], kept_select_reward=s["kept_select_reward"])
        at = np.flatnonzero(ev["iteration"] == iteration)
        if len(at):
            held["this_checkpoint"] = float(ev["reward"][at[-1]])
        out["eval_reward"] = held
    return out


def lm_eval_commands(folder: str, task: str, dtype: str) -> list[str]:
    """lm-evaluation-harness command lines for an exported folder, with transformers (hf) and with vLLM."""
    tasks = LM_EVAL_TASKS.get(task, "TASKS")
    return [f"lm_eval --model hf --model_args pretrained={folder},dtype={dtype} --tasks {tasks} "
            "--apply_chat_template --batch_size 8",
            f"lm_eval --model vllm --model_args pretrained={folder},dtype={dtype},gpu_memory_utilization=0.8 "
            f"--tasks {tasks} --apply_chat_template --batch_size auto"]


def _row(name: str, curve: dict | None, this: str = "") -> str:
    if curve is None:
        return f"| {name} | not logged | | | |"
    best = f"{curve['best']:.4f} (iteration {curve['best_iteration']})"
    return f"| {name} | {curve['start']:.4f} | {best} | {curve['final']:.4f} | {this} |"


def model_card(numbers: dict, run_dir: Path, ckpt: Path, iteration: int, folder: str) -> str:
    """README.md of the exported folder: YAML front matter (Hub metadata, and under es_hpc the provenance and
    numbers from the log) and a short account with the reward table and how to load and evaluate the model."""
    cfg, model, task = numbers["config"], numbers.get("model", "?"), numbers.get("task", "?")
    meta = {"library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["es_hpc", "evolution-strategies", task]}
    if re.fullmatch(r"[\w.-]+/[\w.-]+", model) and not Path(model).exists():  # a hub id, not a local path
        meta["base_model"] = model
    meta["es_hpc"] = {"run": str(run_dir), "checkpoint": ckpt.name, "iteration": iteration, **numbers}
    held, train, es = numbers.get("eval_reward"), numbers.get("train_reward"), cfg["es"]
    this = f"{held['this_checkpoint']:.4f}" if held and "this_checkpoint" in held else "not evaluated"
    lines = [
        f"# ES fine-tune of {model} on {task}", "",
        f"Checkpoint `{ckpt.name}` (iteration {iteration} of {cfg['train']['iterations']}, "
        f"{numbers['iterations_logged']} logged) of the es_hpc train run `{run_dir}` (commit "
        f"`{numbers.get('git_commit', 'unknown')}`): evolution strategies with N={es['population']}, "
        f"sigma={es['sigma']:g}, alpha={es['alpha']:g}, {es['perturbation']} noise, {es['shaping']} shaping, on "
        f"{numbers.get('world_size', '?')} rank(s) with the {numbers.get('backend', '?')} backend in "
        f"{numbers.get('dtype', '?')}. The weights are the ones the run evaluated ({numbers.get('dtype', '?')}); "
        "ES's fp32 masters stay in the run's checkpoint.", "",
        "| reward | start | best | final | this checkpoint |", "|---|---|---|---|---|",
        _row(f"held-out ({held['split']})" if held else "held-out", held, this),
        _row("training (population mean)", train), ""]
    if held and "kept_iteration" in held:
        lines += [f"keep_best kept iteration {held['kept_iteration']}, chosen on {held['select_split']} "
                  f"({held['kept_select_reward']:.4f}); its {held['split']} reward {held['kept_reward']:.4f}.", ""]
    lines += ["All numbers are read from the run's HDF5 log; the front matter holds them unrounded, with the full "
              "config.", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
              f'model = AutoModelForCausalLM.from_pretrained("{folder}")',
              f'tokenizer = AutoTokenizer.from_pretrained("{folder}")', "```", "",
              "lm-evaluation-harness (`pip install lm_eval[hf]`, or `lm_eval[vllm]`)"
              + ("" if task in LM_EVAL_TASKS else f"; es_hpc's {task} task has no counterpart there: name the "
                 "tasks to run") + ":", "", "```bash", *lm_eval_commands(folder, task, numbers.get("dtype", "auto")),
              "```", ""]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + "\n".join(lines)


def export(run_dir: Path, out: Path, which: str = "latest") -> dict:
    """Write checkpoint `which` of a train run as a from_pretrained folder `out` (refused if it exists) with its
    model card, through a temp directory renamed into place; returns what was written."""
    run_dir, out = Path(run_dir).expanduser().resolve(), Path(out).expanduser().resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"export: no run directory {run_dir}")
    if out.exists():
        raise FileExistsError(f"export: --out {out} already exists (give a new folder)")
    ckpt = find_checkpoint(run_dir, which)
    state = json.loads((ckpt / checkpoint.STATE).read_text())
    log = run_dir / json.loads(state["config"])["log"]["file"]
    if not log.is_file():
        raise FileNotFoundError(f"export: no train log {log}")
    numbers = log_numbers(log, state["iteration"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir()
        files = sorted(f.name for f in ckpt.iterdir() if f.is_file() and f.name not in ES_FILES)
        for name in files:
            shutil.copy2(ckpt / name, tmp / name)
        (tmp / "README.md").write_text(model_card(numbers, run_dir, ckpt, state["iteration"], str(out)))
        atomic.replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "checkpoint": str(ckpt), "iteration": state["iteration"], "files": files + ["README.md"]}
