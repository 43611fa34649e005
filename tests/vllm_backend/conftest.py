"""The vLLM suite: one engine for the whole session (its start is the slow part), next to the transformers
backend on the same tiny model. Skipped where vLLM is not installed, unless ES_HPC_REQUIRE_VLLM=1 (CI)."""
from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from es_hpc import tasks
from es_hpc.config import GenerationConfig, ModelConfig

PROMPTS = 32  # test-split rows of the arithmetic task used for every comparison
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


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
def llama_model_dir(tiny_model_dir, tmp_path_factory):
    """A random Llama-shaped model built offline (grouped-query attention: 4 query heads, 2 key/value heads; an
    untied head; no biases) with the tiny model's tokenizer; weights large enough (std 0.5) that greedy choices
    are decisive, not near-ties that the engines' different summation orders could flip."""
    import torch
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    tiny = AutoConfig.from_pretrained(tiny_model_dir)
    config = LlamaConfig(vocab_size=tiny.vocab_size, hidden_size=128, intermediate_size=320, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
                         tie_word_embeddings=False, initializer_range=0.5, bos_token_id=tiny.bos_token_id,
                         eos_token_id=tiny.eos_token_id, pad_token_id=tiny.pad_token_id)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(config).save_pretrained(path)
    for name in TOKENIZER_FILES:
        shutil.copy2(tiny_model_dir / name, path / name)
    return path
