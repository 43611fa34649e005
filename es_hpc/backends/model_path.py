"""Resolve `model.path` to a local directory (an embedded model, checked) or a hub id, with errors that say what to do."""
from __future__ import annotations

import os
from pathlib import Path

from .. import models
from ..config import ConfigError
from ..errors import first_line


def is_local(path: str) -> bool:
    """A path that is written as one (./, /, ~, .cache/...) or exists; anything else is a hub id."""
    return path.startswith((".", "/", "~")) or Path(path).expanduser().exists()


def resolve(path: str) -> str:
    """The model.path to load: `embedded:NAME` becomes the shipped directory; a local directory must hold a
    model, and one that records sha256 digests (the embedded models) must match them. One-line ConfigErrors."""
    try:
        path = models.resolve(path)
    except ValueError as exc:
        raise ConfigError(f"model.path: {exc}") from None
    if not is_local(path):
        return path
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise ConfigError(
            f"model.path: no model at {p} (no config.json); use the embedded model (embedded:tiny), build one with "
            f"`python -m es_hpc make-tiny-model --out {path}` or point it at a saved Hugging Face model"
        )
    try:
        models.verify(p)
    except ValueError as exc:
        raise ConfigError(f"model.path: {exc}") from None
    return str(p)


def load_error(path: str, exc: Exception) -> ConfigError:
    """The one-line ConfigError for a model that from_pretrained could not load: what to do about it."""
    first = first_line(exc)
    if "trust_remote_code" in str(exc):
        return ConfigError(f"model.path: {path!r} ships its own model code; set model.trust_remote_code=true "
                           "only if you trust it")
    if is_local(path):
        return ConfigError(f"model.path: cannot load the model in {path} ({first})")
    from huggingface_hub import constants

    home = os.environ.get("HF_HOME", constants.HF_HOME)
    return ConfigError(
        f"model.path: cannot load {path!r} from the hub or its cache ({first}); hub ids are read from the cache "
        f"under HF_HOME (now {home}): download it there once on a node with network (`hf download {path}`) and "
        "set HF_HUB_OFFLINE=1 on compute nodes, or set model.path to a local save_pretrained directory"
    )
