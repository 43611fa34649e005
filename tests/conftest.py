"""Shared fixtures: the tiny model is built once per checkout (or taken from ES_HPC_TINY_MODEL)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_model_path() -> Path:
    return Path(os.environ.get("ES_HPC_TINY_MODEL", REPO / ".cache" / "tiny-model"))


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The embedded tiny model, built with the project's own command if it is not there yet."""
    path = tiny_model_path()
    if not (path / "tiny_model.json").is_file():
        from es_hpc.tiny_model import build_tiny_model

        build_tiny_model(path)
    return path


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
