"""The vLLM suite: one engine for the whole session (its start is the slow part), next to the transformers
backend on the same tiny model. Skipped where vLLM is not installed, unless ES_HPC_REQUIRE_VLLM=1 (CI)."""
from __future__ import annotations

import importlib.util
import os

import pytest

from es_hpc import tasks
from es_hpc.config import GenerationConfig, ModelConfig

PROMPTS = 32  # test-split rows of the arithmetic task used for every comparison


def _need_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        reason = "vLLM is not installed here: run `bash launch/vllm_env.sh` and use .venv-vllm/bin/python"
        if os.environ.get("ES_HPC_REQUIRE_VLLM") == "1":
            pytest.fail(reason + " (ES_HPC_REQUIRE_VLLM=1)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def vllm_backend(tiny_model_dir):
    _need_vllm()
    from es_hpc.backends.vllm import VLLMBackend

    return VLLMBackend(ModelConfig(path=str(tiny_model_dir), dtype="float32"), GenerationConfig(backend="vllm"))


@pytest.fixture(scope="session")
def hf_backend(tiny_model_dir):
    _need_vllm()
    import torch

    from es_hpc.backends.hf import HFBackend

    return HFBackend(ModelConfig(path=str(tiny_model_dir), dtype="float32"), torch.device("cpu"))


@pytest.fixture(scope="session")
def task():
    return tasks.get("arithmetic")


@pytest.fixture(scope="session")
def rows(task):
    return task.rows("test")[:PROMPTS]
