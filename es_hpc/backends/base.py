"""The interface every model backend implements: what the jobs, the evaluator and ES's parameters need of it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Backend(Protocol):
    """A causal LM with its tokenizer. Capabilities that only some backends have are declared, not probed:
    `in_process` (the model is a torch module in this process: batched population calls, autograd curvature)
    and `teacher_forcing` (one forward pass scores prompt + target tokens, the exact-answer fast path)."""

    dtype: str  # the resolved model.dtype that runs: float32, bfloat16 or float16
    device: torch.device
    tokenizer: Any
    eos_ids: list[int]
    in_process: bool
    teacher_forcing: bool

    def encode(self, conversations: list[list[dict]]) -> Any:
        """Chat-templated prompts, encoded once and reused by every population member."""

    def generate(self, batch: Any, max_new_tokens: int, batch_size: int) -> tuple[list[str], int]:
        """Greedy completions (special tokens dropped) and the number of tokens generated."""

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """The tensors ES may perturb, by Hugging Face name, in a fixed order."""

    def on_change(self, names: list[str], working: list[torch.Tensor]) -> None:
        """Called after every write of the perturbed tensors: a backend whose weights live elsewhere pushes them."""

    def save(self, path: Path) -> None:
        """A from_pretrained-loadable directory of the working weights and tokenizer."""
