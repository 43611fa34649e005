"""Resolve `model.path` to a local directory or a hub id, with errors that say what to do."""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError


def is_local(path: str) -> bool:
    """A path that is written as one (./, /, ~, .cache/...) or exists; anything else is a hub id."""
    return path.startswith((".", "/", "~")) or Path(path).expanduser().exists()


def check(path: str) -> None:
    """Fail early, with one line naming model.path, when a local model directory is missing."""
    if not is_local(path):
        return
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise ConfigError(
            f"model.path: no model at {p} (no config.json); build the tiny model with "
            f"`python -m es_hpc make-tiny-model --out {path}` or point it at a saved Hugging Face model"
        )
