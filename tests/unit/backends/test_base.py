"""Every backend implements backends.base.Backend: its methods, and the capabilities the jobs read instead of
probing the backend's attributes."""
import inspect

import torch

from es_hpc.backends.base import Backend
from es_hpc.backends.hf import HFBackend
from es_hpc.backends.vllm import VLLMBackend
from es_hpc.config import ModelConfig

METHODS = [name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_")]


def test_transformers_backend_is_a_backend(tiny_model_dir):
    backend = HFBackend(ModelConfig(path=str(tiny_model_dir), dtype="float32"), torch.device("cpu"))
    assert isinstance(backend, Backend)
    assert backend.in_process and backend.teacher_forcing and not backend.params_in_engine


def test_vllm_backend_declares_the_interface():
    """Without an engine here: the class has every method with the protocol's parameters, and its capabilities,
    among them params_in_engine with the engine_params method it promises; tests/vllm_backend checks an instance
    against a real engine."""
    assert set(METHODS) == {"encode", "generate", "named_parameters", "save", "close"}
    for name in METHODS:
        assert list(inspect.signature(getattr(VLLMBackend, name)).parameters) == \
            list(inspect.signature(getattr(Backend, name)).parameters), name
    assert VLLMBackend.in_process is False and VLLMBackend.teacher_forcing is False
    assert VLLMBackend.params_in_engine is True
    assert list(inspect.signature(VLLMBackend.engine_params).parameters) == ["self", "patterns", "master_device"]
