"""The recipe of the embedded default model: a ~1M-parameter Qwen2 built offline, pretrained until partly right.

No model hub is reachable on the build machines, so the project makes its own: a character-level tokenizer
with a Qwen-style chat template, a small Qwen2ForCausalLM, and a short supervised pretraining on the
arithmetic task that stops on a measured held-out accuracy near 0.3, leaving ES visible headroom.
The build is deterministic (fixed seeds, one thread): two builds on one machine give identical weights, but
builds on other machines have differed, so one build ships in es_hpc/models/tiny and every machine uses it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import (GemmaConfig, GemmaForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM)

from .. import tasks
from ..runtime import atomic
from .. import models as embedded

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHARS = [chr(c) for c in range(32, 127)] + ["\n"]  # printable ASCII and newline: any task's plain text
# Qwen2's pre-tokenization split (its tokenizer rebuilds this pipeline around the saved vocab on load).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Shape from shared/notes/tiny-es-feasibility.md: 1.06M parameters, full multi-head attention (4 kv heads).
HIDDEN, LAYERS, HEADS, KV_HEADS, MAX_POSITIONS = 128, 4, 4, 4, 256  # intermediate = 4 * hidden
# The family of `make-tiny-model --size` (issue 18's scale axis): (hidden, layers), ~0.15M to ~2.4M parameters
# (16x, as the paper's 0.5B-7B span 14x), every one pretrained by the same recipe; m is the embedded tiny model.
SIZES = {"xs": (48, 4), "s": (80, 4), "m": (HIDDEN, LAYERS), "l": (192, 4)}
# Pretraining (~0.2 s per step on one thread): val accuracy idles near 0 for ~130 steps, then climbs ~0.04 per
# 5 steps, so it is measured every SPARSE steps until it reaches RISING, then every DENSE steps.
LR, BETAS, CLIP, BATCH, MAX_STEPS = 2e-3, (0.9, 0.95), 1.0, 64, 500
SPARSE, DENSE, RISING = 20, 5, 0.08
TARGET, OVERSHOOT = (0.25, 0.40), 0.6


def make_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character plus the three Qwen specials (ids 0-2), in Qwen2's byte-level pipeline.

    AutoTokenizer loads any model_type "qwen2" directory as Qwen2Tokenizer, which rebuilds NFC + regex split +
    ByteLevel around the saved vocab; so the vocab is written in the byte-level alphabet (" " is "Ġ") and the
    pipeline here is that same one, or the loaded tokenizer would tokenize differently from the trained one.
    """
    to_bytelevel = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    chars = [to_bytelevel.pre_tokenize_str(c)[0][0] for c in CHARS]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate([PAD, IM_START, IM_END] + chars)}, merges=[]))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"), to_bytelevel]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([PAD, IM_START, IM_END])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD, chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS, padding_side="left",
    )


def make_model(tokenizer: PreTrainedTokenizerFast, hidden: int = HIDDEN, layers: int = LAYERS) -> Qwen2ForCausalLM:
    """A small Qwen2 with tied embeddings, initialized from the current torch seed, greedy by default."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, do_sample=False)
    return model


def prompt_texts(tokenizer, task, rows) -> list[str]:
    """The chat-templated prompts, ending with the assistant header: exactly what generation sees."""
    return [tokenizer.apply_chat_template(task.prompt(r), add_generation_prompt=True, tokenize=False) for r in rows]


def training_tensors(tokenizer, task, rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompt + answer + <|im_end|>, right-padded; labels are -100 except on the answer and the end token."""
    prompts = tokenizer(prompt_texts(tokenizer, task, rows), add_special_tokens=False)["input_ids"]
    answers = tokenizer([r["answer"] for r in rows], add_special_tokens=False)["input_ids"]
    seqs = [p + a + [tokenizer.eos_token_id] for p, a in zip(prompts, answers)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, s) in enumerate(zip(prompts, seqs)):
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, len(p):len(s)] = ids[i, len(p):len(s)]
        mask[i, :len(s)] = 1
    return ids, labels, mask


@torch.no_grad()
def greedy_accuracy(model, tokenizer, task, rows, batch_size: int = 500) -> float:
    """Mean task reward of greedy completions (left-padded batches): the number ES will start from."""
    texts = prompt_texts(tokenizer, task, rows)
    was_training = model.training
    model.eval()
    total = 0.0
    for s in range(0, len(rows), batch_size):
        enc = tokenizer(
            texts[s:s + batch_size], return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        out = model.generate(**enc, max_new_tokens=task.max_new_tokens, do_sample=False)
        completions = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        total += sum(task.reward(c, r) for c, r in zip(completions, rows[s:s + batch_size]))
    model.train(was_training)
    return total / len(rows)


def pretrain(model, tokenizer, task, seed: int, log) -> tuple[int, float, float]:
    """AdamW on random train batches until a validation measurement lands in TARGET; (steps, loss, val acc)."""
    ids, labels, mask = training_tensors(tokenizer, task, task.rows("train"))
    val = task.rows("val")
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS)
    model.train()
    every = SPARSE
    for step in range(1, MAX_STEPS + 1):
        b = torch.from_numpy(rng.integers(0, len(ids), BATCH))
        loss = model(input_ids=ids[b], attention_mask=mask[b], labels=labels[b]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        if step % every:
            continue
        acc = greedy_accuracy(model, tokenizer, task, val)
        log(f"tiny-model step {step:4d}  loss {loss.item():.4f}  val acc {acc:.3f}")
        if TARGET[0] <= acc <= TARGET[1]:
            return step, loss.item(), acc
        if acc > OVERSHOOT:
            raise RuntimeError(f"tiny model overshot: val accuracy {acc:.3f} > {OVERSHOOT} at step {step}")
        if acc >= RISING:
            every = DENSE
    raise RuntimeError(f"tiny model never reached val accuracy in {TARGET} within {MAX_STEPS} steps")


def build_tiny_model(out_dir, seed: int = 0, log=print, hidden: int = HIDDEN, layers: int = LAYERS) -> dict:
    """Build, pretrain and save a tiny model into out_dir (atomically); returns the facts in tiny_model.json.

    The defaults give the embedded model; other shapes (SIZES) go through the identical recipe.
    """
    start = time.perf_counter()
    out = Path(out_dir).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    task = tasks.get("arithmetic")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the reduction order, hence every bit of the weights, is fixed
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
            torch.manual_seed(seed)
            tokenizer = make_tokenizer()
            model = make_model(tokenizer, hidden, layers)
            steps, loss, val_acc = pretrain(model, tokenizer, task, seed, log)
        test_acc = greedy_accuracy(model, tokenizer, task, task.rows("test"))
    finally:
        torch.set_num_threads(threads)
    facts = {
        "seed": seed, "task": task.name, "hidden": hidden, "layers": layers, "size": size_name(hidden, layers),
        "recipe": recipe(), "steps": steps, "train_loss": round(loss, 6),
        "val_accuracy": val_acc, "test_accuracy": test_acc,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "seconds": round(time.perf_counter() - start, 2),
    }
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        facts["sha256"] = embedded.file_digests(tmp)  # checked whenever the model is loaded
        (tmp / embedded.FACTS).write_text(json.dumps(facts, indent=2) + "\n")
        for f in tmp.iterdir():  # mkdtemp and safetensors make some private; the model is meant to be shared
            f.chmod(0o644)
        tmp.chmod(0o755)
        atomic.replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"tiny-model saved to {out}: {facts['parameters']} parameters, {steps} steps, "
        f"val acc {val_acc:.3f}, test acc {test_acc:.3f}, {facts['seconds']} s")
    name = embedded_name(facts["size"])
    differs = differs_from_embedded(name, facts["sha256"]) if name else None
    if differs is not None:
        log("tiny-model: " + (f"differs from the embedded model ({embedded.HERE / name}) in {', '.join(differs)}"
                              if differs else f"identical to the embedded model {name}, file for file"))
    return dict(facts, differs_from_embedded=differs)


def size_name(hidden: int, layers: int) -> str | None:
    """The SIZES name of a shape, None for a shape outside the family."""
    return next((name for name, shape in SIZES.items() if shape == (hidden, layers)), None)


def recipe() -> dict:
    """The build settings every size shares (recorded in each model's tiny_model.json)."""
    return {"lr": LR, "betas": list(BETAS), "clip": CLIP, "batch": BATCH, "max_steps": MAX_STEPS,
            "target_val_accuracy": list(TARGET), "heads": HEADS, "kv_heads": KV_HEADS, "intermediate": "4 * hidden"}


def embedded_name(size: str | None) -> str | None:
    """The embedded model a family size ships as (`embedded:tiny` is m, `embedded:tiny-xs` is xs, ...)."""
    return None if size is None else "tiny" if size == "m" else f"tiny-{size}"


def differs_from_embedded(name: str, digests: dict[str, str]) -> list[str] | None:
    """The files whose sha256 differ from embedded model `name` (None when it does not ship); a rebuild elsewhere
    may differ: that is why the models ship instead of being rebuilt on every machine."""
    facts = embedded.HERE / name / embedded.FACTS
    return embedded.differing(json.loads(facts.read_text())["sha256"], digests) if facts.is_file() else None


# make-random-model --family: architectures both transformers and vLLM ship, each with a different layout for ES
# to map: qwen2 is the tiny model's (qkv biases, tied head); llama has grouped-query attention (2 key/value heads)
# and an untied head; gemma multi-query attention (1), GeGLU, (1 + w) norms, an embedding scaled by sqrt(hidden).
FAMILIES = {  # name -> (config class, model class, their settings); qwen2 is make_model's
    "qwen2": None,
    "llama": (LlamaConfig, LlamaForCausalLM, {"num_key_value_heads": 2, "tie_word_embeddings": False}),
    "gemma": (GemmaConfig, GemmaForCausalLM, {"num_key_value_heads": 1, "tie_word_embeddings": True}),
}


def make_family_model(tokenizer, family: str, hidden: int, layers: int, init_std: float | None = None):
    """A random model of a FAMILIES `family` for the tiny model's tokenizer, HEADS heads, intermediate 4 x hidden,
    greedy by default; init_std redraws every matrix (embedding, projections, head) from N(0, init_std^2), for
    logits whose greedy choices are decisive rather than near-ties."""
    if FAMILIES[family] is None:
        model = make_model(tokenizer, hidden, layers)
    else:
        config_cls, model_cls, extra = FAMILIES[family]
        pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        model = model_cls(config_cls(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
            num_attention_heads=HEADS, head_dim=hidden // HEADS, max_position_embeddings=MAX_POSITIONS,
            bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, **extra))
        model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=eos, pad_token_id=pad,
                                                   do_sample=False)
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():  # a tied head is the embedding's parameter: drawn once
                if p.dim() == 2:
                    p.normal_(0.0, init_std)
    return model


def build_random_model(out_dir, hidden: int, layers: int, seed: int = 0, family: str = "qwen2",
                       init_std: float | None = None) -> dict:
    """The tiny model's tokenizer with a random model of `family` at another size (for scaling, benchmarks and the
    families' tests), saved atomically."""
    if family not in FAMILIES:
        raise ValueError(f"no model family {family!r} (families: {', '.join(FAMILIES)})")
    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    model = make_family_model(tokenizer, family, hidden, layers, init_std)
    out = Path(out_dir).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    atomic.replace_dir(tmp, out)
    return {"family": family, "hidden": hidden, "layers": layers,
            "parameters": sum(p.numel() for p in model.parameters())}
