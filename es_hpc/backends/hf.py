"""The transformers backend: a causal LM in memory and deterministic batched greedy generation."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from ..config import ConfigError, ModelConfig
from . import model_path

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str, device: torch.device) -> str:
    """model.dtype "auto": bfloat16 on a GPU (the paper's setting, Appendix G.1), float32 on the CPU."""
    if name != "auto":
        return name
    return "bfloat16" if device.type == "cuda" else "float32"


@dataclass
class Batch:
    """Tokenized, left-padded prompts, encoded once and reused by every population member."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def repeat(self, k: int) -> "Batch":
        """k copies one after the other: the member-major batch of a batched population call."""
        return Batch(self.input_ids.repeat(k, 1), self.attention_mask.repeat(k, 1))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" is this rank's GPU when there is one, else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("model.device: cuda requested but no GPU is visible")
    return torch.device("cuda", local_rank)


def chat_texts(tokenizer, conversations: list[list[dict]]) -> list[str]:
    """Each conversation through the tokenizer's chat template, ending with the assistant's generation prompt."""
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]


class HFBackend:
    """Loads `model.path` (local directory or hub id) with its tokenizer and chat template; the model lives in this
    process, so it can evaluate a batched population and score by teacher forcing (backends.base.Backend)."""

    in_process = True
    teacher_forcing = True
    params_in_engine = False

    def __init__(self, cfg: ModelConfig, device: torch.device):
        """Load the model in `model.dtype`; "auto" is resolved here into `self.dtype`, the dtype that runs."""
        path = model_path.resolve(cfg.path)
        self.dtype = resolve_dtype(cfg.dtype, device)
        hf_logging.disable_progress_bar()  # per-shard bars would flood batch-job logs at every checkpoint
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                path, dtype=DTYPES[self.dtype], trust_remote_code=cfg.trust_remote_code
            )
        except (OSError, ValueError) as exc:  # not found / offline; custom code without trust_remote_code
            raise model_path.load_error(path, exc) from None
        self.model.to(device).eval()
        self.model.requires_grad_(False)
        self.device = device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        return ids or [self.tokenizer.eos_token_id]

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return list(self.model.named_parameters())

    def encode(self, conversations: list[list[dict]]) -> Batch:
        """Apply the chat template (with the assistant's generation prompt) and left-pad."""
        texts = chat_texts(self.tokenizer, conversations)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return Batch(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))

    @torch.no_grad()
    def generate(self, batch: Batch, max_new_tokens: int, batch_size: int) -> tuple[list[str], int]:
        """Greedy completions (decoded, special tokens dropped) and the number of tokens generated."""
        texts, tokens = [], 0
        for s in range(0, batch.input_ids.shape[0], batch_size):
            ids, mask = batch.input_ids[s:s + batch_size], batch.attention_mask[s:s + batch_size]
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                eos_token_id=self.eos_ids, pad_token_id=self.tokenizer.pad_token_id,
            )
            new = out[:, ids.shape[1]:]
            tokens += int(self._generated_lengths(new).sum())
            texts += self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return texts, tokens

    @torch.no_grad()
    def teacher_forced(self, batch: Batch, targets: list[list[int]],
                       batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass over each prompt followed by its target tokens (right-padded): at every target position,
        the argmax token (what greedy decoding emits there after the targets before it) and its margin over the
        runner-up logit (how safely it is the argmax). Positions follow the mask as in generate."""
        width = max(map(len, targets))
        tail = torch.full((len(targets), width), self.tokenizer.pad_token_id, dtype=batch.input_ids.dtype)
        for i, t in enumerate(targets):
            tail[i, :len(t)] = torch.tensor(t, dtype=tail.dtype)
        ids = torch.cat([batch.input_ids, tail.to(self.device)], 1)
        mask = torch.cat([batch.attention_mask, torch.ones_like(tail, device=self.device)], 1)
        pos = (mask.long().cumsum(-1) - 1).masked_fill_(mask == 0, 1)
        preds, margins = [], []
        for s in range(0, ids.shape[0], batch_size):
            logits = self.model(input_ids=ids[s:s + batch_size], attention_mask=mask[s:s + batch_size],
                                position_ids=pos[s:s + batch_size], logits_to_keep=width + 1).logits[:, :width]
            top = logits.float().topk(2, dim=-1)
            preds.append(top.indices[..., 0])
            margins.append(top.values[..., 0] - top.values[..., 1])
        return torch.cat(preds).cpu(), torch.cat(margins).cpu()

    def _generated_lengths(self, new: torch.Tensor) -> torch.Tensor:
        """Tokens up to and including the first end token of each row (padding after it excluded)."""
        is_end = torch.isin(new, torch.tensor(self.eos_ids, device=new.device))
        after_end = (is_end.cumsum(1) - is_end.int()) > 0
        return (~after_end).sum(1)

    def close(self) -> None:
        """Nothing to stop: the model is this process's own."""

    def save(self, path) -> None:
        """save_pretrained of the working model (safetensors) and tokenizer: loadable by from_pretrained."""
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
