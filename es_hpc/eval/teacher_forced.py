"""Exact-answer fast path: the reward of greedy decoding from one teacher-forced forward pass.

For a task that declares `reference_completion` (reward 1 iff completion.strip() == reference.strip()), greedy
decoding earns 1 exactly when it emits the reference's tokens and then an end token. One forward pass over
prompt + reference + end token gives the greedy choice at every position given the right prefix, which decides
the reward exactly, without generating, in all but a few cases; those rows (a near-tie of two logits, or a
divergence into whitespace or a special token that later tokens could still repair) are left to generation.
Assumes the tokenizer's decode is concatenative (decode(a + b) == decode(a) + decode(b)), as it is for
byte-level BPE and character tokenizers on ASCII text.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

# A greedy choice whose logit beats the runner-up by no more than this is not trusted: the cached incremental
# forward of generate may round differently from the full forward here (float32 differences are ~1e-6).
MARGIN = {"float32": 1e-3, "bfloat16": 0.25, "float16": 0.05}


def decide(pred: Sequence[int], margin: Sequence[float], target: list[int], reference: str, eos_ids: set[int],
           max_new_tokens: int, tol: float, decode: Callable[[list[int]], str]) -> tuple[str | None, int]:
    """(a completion text with the same reward as greedy decoding's, tokens it took), or (None, 0) when one
    forward pass cannot tell. `target` is the reference's tokens plus an end token; `pred`/`margin` are the
    argmax and its margin at each target position."""
    want = reference.strip()
    for j in range(min(len(target), max_new_tokens)):
        if margin[j] <= tol:
            return None, 0
        g = int(pred[j])
        if g == target[j]:
            continue
        if g in eos_ids:  # greedy stops here: the completion is the reference's first j tokens
            return decode(target[:j]), j + 1
        text = decode(target[:j] + [g])
        if j + 1 == max_new_tokens:  # greedy is cut off here: this is the whole completion
            return text, j + 1
        seen = text.strip()
        if seen and not want.startswith(seen):  # every continuation keeps this non-matching start: reward 0
            return text, j + 1
        return None, 0  # whitespace or a special token: later tokens decide, so generate
    n = min(len(target), max_new_tokens)
    return decode(target[:n]), n


def greedy_completions(backend, batch, references: list[str], max_new_tokens: int, batch_size: int,
                       tol: float) -> tuple[list[str | None], int]:
    """decide() for every row of `batch` from one teacher-forced forward pass; None where generation must decide."""
    tok = backend.tokenizer
    end = backend.eos_ids[0]
    targets = [tok(r, add_special_tokens=False)["input_ids"] + [end] for r in references]
    preds, margins = backend.teacher_forced(batch, targets, batch_size)
    eos = set(backend.eos_ids)
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731 (as generate's batch_decode)
    texts, tokens = [], 0
    for p, m, t, r in zip(preds.tolist(), margins.tolist(), targets, references):
        text, n = decide(p, m, t, r, eos, max_new_tokens, tol, decode)
        texts.append(text)
        tokens += n
    return texts, tokens
