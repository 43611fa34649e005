"""Shared fixtures: the embedded tiny model (or ES_HPC_TINY_MODEL) and the interpreter."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from es_hpc import models

REPO = Path(__file__).resolve().parents[1]


def tiny_model_path() -> Path:
    """ES_HPC_TINY_MODEL when set, else the embedded model that ships with es_hpc."""
    return Path(os.environ.get("ES_HPC_TINY_MODEL") or models.resolve("embedded:tiny"))


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny model every test uses: its files checked against the sha256 digests it records."""
    path = tiny_model_path()
    models.verify(path)
    return path


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
