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


SUITES = ("unit", "dist", "e2e", "vllm_backend")  # tests/SUITE/: marked SUITE (pyproject's markers)


def pytest_collection_modifyitems(items) -> None:
    """Mark every test by its suite folder, and `tiny_model` where it uses the embedded model (tiny_model_dir),
    so that `-m` selects them without a mark written by hand in any file."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO).parts
        if len(parts) > 1 and parts[0] == "tests" and parts[1] in SUITES:
            item.add_marker(parts[1])
        if "tiny_model_dir" in getattr(item, "fixturenames", ()):
            item.add_marker("tiny_model")


# Skip reasons (a phrase of the message) -> (what is missing, the command that makes those tests run). A reason
# matching none is reported as it is.
ENABLE = {
    "install_mpi.sh": ("no Open MPI mpirun or mpi4py", "bash tests/infra/install_mpi.sh"),
    "slurm_cluster.sh install": ("no Slurm", "bash tests/infra/slurm_cluster.sh install"),
    "native noise library not built": ("native noise kernel not built",
                                       "apt-get install cmake g++, then bash launch/test.sh"),
    "no CUDA device": ("no CUDA GPU", "run on a machine with an NVIDIA GPU"),
    "vLLM is not installed": ("no vLLM in this venv",
                              "bash launch/vllm_env.sh && .venv-vllm/bin/python -m pytest -q tests/vllm_backend"),
    "vLLM is installed here": ("vLLM is installed in this venv", "run them with a venv without vLLM (.venv)"),
}
_skipped: dict[tuple[str, str], set[str]] = {}  # (test file, reason) -> names of its tests skipped for it


def _note_skip(report) -> None:
    """Remember a skipped test (or a whole file skipped at collection) under its file and reason."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    path, _, name = report.nodeid.partition("::")
    _skipped.setdefault((path, reason.removeprefix("Skipped: ")), set()).add(name.split("[")[0])


pytest_runtest_logreport = pytest_collectreport = _note_skip


def skip_entry(path: str, names: list[str], reason: str) -> str:
    """One entry of launch/test.sh's skip summary: where (the file, or its tests), why, and how to enable it."""
    where = path if not names else f"{path}::{names[0]}" if len(names) == 1 else f"{path}::{{{','.join(names)}}}"
    for phrase, (why, enable) in ENABLE.items():
        if phrase in reason:
            return f"{where} ({why}; enable: {enable})"
    return f"{where} ({reason})"


def pytest_sessionfinish(session) -> None:
    """Append one line per (file, reason) skipped to the file ES_HPC_SKIP_LOG names (launch/test.sh sums them
    up); a file is named alone when all its tests were skipped for that reason."""
    log = os.environ.get("ES_HPC_SKIP_LOG")
    if not log or not _skipped:
        return
    tests: dict[str, set[str]] = {}
    for item in session.items:
        path, _, name = item.nodeid.partition("::")
        tests.setdefault(path, set()).add(name.split("[")[0])
    with open(log, "a") as out:
        for (path, reason), names in sorted(_skipped.items()):
            whole = names >= tests.get(path, set())  # (a file skipped at collection has no items)
            out.write(skip_entry(path, [] if whole else sorted(names), reason) + "\n")
