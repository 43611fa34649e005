"""Checkpoints: a from_pretrained-loadable model plus the ES state, written atomically.

Layout: RUN_DIR/checkpoints/iter_000050/ (model.safetensors, config.json, tokenizer files, es_state.json,
es_master.safetensors when the model is not fp32) and a `latest` file naming the newest complete one.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import atomic

STATE = "es_state.json"
MASTER = "es_master.safetensors"


def save(run_dir: Path, name: str, save_model, masters: dict[str, torch.Tensor] | None, state: dict,
         keep: int | None = None) -> Path:
    """Write checkpoint `name` (save_model(dir) writes the HF files) and, for iter_* names, point `latest` at it."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp)
    if masters is not None:
        save_file({k: v.contiguous() for k, v in masters.items()}, str(tmp / MASTER))
    (tmp / STATE).write_text(json.dumps(state, indent=1))
    final = root / name
    atomic.replace_dir(tmp, final)
    if name.startswith("iter_"):
        atomic.write_text(root / "latest", name)
        if keep:
            for old in sorted(p for p in root.glob("iter_*") if p.name != name)[:-(keep - 1) or None]:
                shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / STATE).is_file() else None


def load(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """ES state and the fp32 parameters of a checkpoint (its masters, or its model weights when fp32)."""
    path = Path(path)
    state = json.loads((path / STATE).read_text())
    files = [path / MASTER] if (path / MASTER).is_file() else sorted(path.glob("model*.safetensors"))
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return state, tensors
