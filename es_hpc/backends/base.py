"""The interface every model backend implements: what the jobs, the evaluator and ES's parameters need of it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Backend(Protocol):
    """A causal LM with its tokenizer. Capabilities that only some backends have are declared, not probed:
    `in_process` (the model is a torch module in this process: batched population calls, autograd curvature),
    `teacher_forcing` (one forward pass scores prompt + target tokens, the exact-answer fast path) and
    `params_in_engine` (the weights live in an engine's workers, which perturb them there: such a backend has
    `engine_params(patterns, master_device)`, the PerturbedParams interface for the tensors matching es.params,
    and its named_parameters() only name and shape them)."""

    dtype: str  # the resolved model.dtype that runs: float32, bfloat16 or float16
    device: torch.device
    tokenizer: Any
    eos_ids: list[int]
    in_process: bool
    teacher_forcing: bool
    params_in_engine: bool

    def encode(self, conversations: list[list[dict]]) -> Any:
        """Chat-templated prompts, encoded once and reused by every population member."""

    def generate(self, batch: Any, max_new_tokens: int, batch_size: int) -> tuple[list[str], int]:
        """Greedy completions (special tokens dropped) and the number of tokens generated."""

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """The tensors ES may perturb, by Hugging Face name, in a fixed order (a tensor's noise key is its index)."""

    def save(self, path: Path) -> None:
        """A from_pretrained-loadable directory of the working weights and tokenizer."""

    def close(self) -> None:
        """Stop what the backend started (an engine and its workers); the job's communicator calls it before it
        leaves the process group."""
