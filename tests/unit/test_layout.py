"""The house rules of the package, checked on its source: short functions and modules, a train job that reads
as Algorithm 1 in one screenful or two, and an ES core that imports no heavy framework."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "es_hpc"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "_native" not in p.parts)


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_functions_and_modules_are_short(path):
    long = [(name, n) for name, n in functions(path) if n > 60]
    assert not long, f"functions over 60 lines: {long}"
    assert len(path.read_text().splitlines()) <= 300


def test_train_job_is_one_readable_file():
    assert len((PACKAGE / "jobs" / "train.py").read_text().splitlines()) <= 150


def test_core_imports_no_framework():
    code = ("import sys, es_hpc.core.strategy, es_hpc.core.params, es_hpc.core.lowrank, es_hpc.core.native; "
            "print(sorted({'transformers', 'vllm', 'mpi4py', 'h5py'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
