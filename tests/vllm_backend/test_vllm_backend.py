"""The vLLM backend against the transformers backend on the tiny model: parity of completions and rewards,
every parameter reaching the engine, exact restore, and the update equal to a fresh engine on the checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from es_hpc.core.params import PerturbedParams, select

SEEDS = [11, 12, 13, 14, 15]  # member seeds of the parity test (plus the unperturbed model)
# Perturbation scales tried in turn: a comparison uses the first that visibly changes the transformers model's
# output, so it has teeth whatever the build of the model.
SIGMAS = (0.02, 0.05, 0.2, 1.0)
TOP = 5  # first-token log-probabilities compared per prompt
VISIBLE = 1e-3  # a log-probability shift this large is a change, far above the engines' 1e-4 disagreement


def perturbed(backend, patterns=("*",)) -> PerturbedParams:
    return PerturbedParams(select(backend.named_parameters(), list(patterns)), on_change=getattr(backend, "on_change", None))


def completions(backend, task, rows):
    batch = backend.encode([task.prompt(r) for r in rows])
    texts, tokens = backend.generate(batch, task.max_new_tokens, 64)
    return texts, np.array([task.reward(t, r) for t, r in zip(texts, rows)]), tokens


def vllm_logprobs(backend, batch) -> list[dict[int, float]]:
    """The engine's top first-token log-probabilities of each prompt (raw log-softmax of its logits)."""
    from vllm import SamplingParams

    outs = backend.llm.generate([{"prompt_token_ids": ids} for ids in batch],
                                SamplingParams(temperature=0.0, max_tokens=1, logprobs=TOP), use_tqdm=False)
    return [{t: lp.logprob for t, lp in o.outputs[0].logprobs[0].items()} for o in outs]


@torch.no_grad()
def hf_logprobs(backend, batch) -> torch.Tensor:
    """The transformers model's first-token log-softmax of each (left-padded) prompt."""
    pos = (batch.attention_mask.cumsum(-1) - 1).clamp_(min=0)
    logits = backend.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=pos).logits
    return torch.log_softmax(logits[:, -1].float(), -1)


def max_gap(v: list[dict[int, float]], h: torch.Tensor) -> float:
    return max(abs(lp - float(h[i, t])) for i, d in enumerate(v) for t, lp in d.items())


def visible_sigma(p: PerturbedParams, seed: int, observe, changed):
    """The first of SIGMAS at which `changed(observe())` holds with member `seed` perturbing `p` (left perturbed),
    and that observation; fails if even the largest leaves the output unchanged."""
    for sigma in SIGMAS:
        p.perturb(seed, sigma)
        seen = observe()
        if changed(seen):
            return sigma, seen
        p.restore()
    pytest.fail(f"seed {seed}: no scale in {SIGMAS} changes the transformers model's output")


def test_engine_backend_is_a_backend(vllm_backend):
    from es_hpc.backends.base import Backend

    assert isinstance(vllm_backend, Backend) and not vllm_backend.in_process and not vllm_backend.teacher_forcing


def test_parity_with_transformers(vllm_backend, hf_backend, task, rows):
    """Same greedy completions, rewards and token counts, unperturbed and for a handful of seeds, each at a scale
    that changes the transformers model's completions."""
    pv, ph = perturbed(vllm_backend), perturbed(hf_backend)
    assert pv.names == ph.names and pv.indices == ph.indices  # same tensors, same order: same noise per seed
    base = completions(hf_backend, task, rows)
    for seed in [None, *SEEDS]:
        if seed is None:
            sigma, hf = 0.0, base
        else:
            sigma, hf = visible_sigma(ph, seed, lambda: completions(hf_backend, task, rows), lambda c: c[0] != base[0])
            pv.perturb(seed, sigma)
        tv, rv, nv = completions(vllm_backend, task, rows)
        assert tv == hf[0], f"seed {seed} sigma {sigma}: {[(a, b) for a, b in zip(tv, hf[0]) if a != b][:3]}"
        assert np.array_equal(rv, hf[1]) and nv == hf[2]
        pv.restore()
        ph.restore()


def test_every_parameter_reaches_the_engine(vllm_backend, hf_backend, task, rows):
    """Perturbing each Hugging Face tensor alone, at a scale that visibly moves the transformers model's top
    log-probabilities, moves the engine's to the values the transformers model gives: every tensor reached its
    place in vLLM's layout."""
    bv = vllm_backend.encode([task.prompt(r) for r in rows[:4]])
    bh = hf_backend.encode([task.prompt(r) for r in rows[:4]])
    base, base_h = vllm_logprobs(vllm_backend, bv), hf_logprobs(hf_backend, bh)
    assert max_gap(base, base_h) < 1e-4

    def top_shift(h: torch.Tensor) -> float:
        """How far the transformers model's top first-token log-probabilities moved from base_h."""
        top = h.topk(TOP, dim=-1).indices
        return float((h.gather(1, top) - base_h.gather(1, top)).abs().max())
    names = [n for n, _ in vllm_backend.named_parameters()]
    for name in names:
        pv, ph = perturbed(vllm_backend, [name]), perturbed(hf_backend, [name])
        sigma, moved_h = visible_sigma(ph, 7, lambda: hf_logprobs(hf_backend, bh), lambda h: top_shift(h) > VISIBLE)
        pv.perturb(7, sigma)
        moved = vllm_logprobs(vllm_backend, bv)
        shift = max(abs(lp - base[i].get(t, -np.inf)) for i, d in enumerate(moved) for t, lp in d.items())
        assert shift > VISIBLE / 2, f"{name}: perturbing it (sigma {sigma}) did not change the engine's outputs"
        assert max_gap(moved, moved_h) < 1e-4, f"{name}: engine disagrees with transformers (sigma {sigma})"
        pv.restore()
        ph.restore()
    assert len(names) == len(hf_backend.named_parameters())


def _engine_tensors(worker) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in worker.model_runner.model.named_parameters() if p.numel()}


def test_restore_is_exact_through_the_engine(vllm_backend, task, rows):
    """After perturb and restore the engine gives bit-identical log-probabilities and completions, and every
    tensor it keeps unpacked (embedding, norms, biases) is bit-identical."""
    batch = vllm_backend.encode([task.prompt(r) for r in rows])
    before = vllm_logprobs(vllm_backend, batch), vllm_backend.generate(batch, task.max_new_tokens, 64)
    tensors = vllm_backend.llm.collective_rpc(_engine_tensors)[0]
    p = perturbed(vllm_backend)
    p.perturb(3, SIGMAS[0])
    assert vllm_logprobs(vllm_backend, batch) != before[0]
    p.restore()
    assert (vllm_logprobs(vllm_backend, batch), vllm_backend.generate(batch, task.max_new_tokens, 64)) == before
    after = vllm_backend.llm.collective_rpc(_engine_tensors)[0]
    assert after.keys() == tensors.keys() and all(torch.equal(after[n], tensors[n]) for n in tensors)


FRESH = """
import json, sys
from es_hpc.backends.vllm import VLLMBackend
from es_hpc.config import GenerationConfig, ModelConfig
from test_vllm_backend import vllm_logprobs
backend = VLLMBackend(ModelConfig(path=sys.argv[1], dtype="float32"), GenerationConfig(backend="vllm"))
batch = json.loads(sys.argv[2])
print(json.dumps([{str(t): lp for t, lp in d.items()} for d in vllm_logprobs(backend, batch)]))
"""


def test_update_equals_a_fresh_engine_on_the_checkpoint(vllm_backend, task, rows, tmp_path):
    """The ES update reaches the engine: its outputs equal those of a new engine started from the saved
    checkpoint, which from_pretrained loads with exactly the updated weights."""
    from transformers import AutoModelForCausalLM

    p = perturbed(vllm_backend)
    original = {n: m.clone() for n, m in p.state_dict().items()}  # state_dict aliases the masters on CPU
    p.update(np.array([21, 22, 23]), np.array([0.01, -0.02, 0.005]))
    batch = vllm_backend.encode([task.prompt(r) for r in rows])
    updated = vllm_logprobs(vllm_backend, batch)
    vllm_backend.save(tmp_path / "ckpt")
    try:
        hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype=torch.float32)
        loaded = dict(hf.named_parameters())
        assert loaded.keys() == set(p.names) and all(torch.equal(loaded[n], m) for n, m in p.state_dict().items())
        out = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "ckpt"), json.dumps(batch)],
                             capture_output=True, text=True, timeout=300, cwd=__file__.rsplit("/", 1)[0])
        assert out.returncode == 0, out.stderr[-3000:]
        fresh = [{int(t): lp for t, lp in d.items()} for d in json.loads(out.stdout.strip().splitlines()[-1])]
        assert fresh == updated
    finally:
        p.load_state_dict(original)  # the session's engine goes back to the tiny model for other tests
    assert vllm_logprobs(vllm_backend, batch) != updated
