"""The curvature operators of the slq job (es_hpc/landscape/curvature.py) against explicit Hessians and exact spectra."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

from analysis.slq import lanczos, slq, summaries
from es_hpc import tasks
from es_hpc.landscape.curvature import IGNORE, CrossEntropyHessian, SteinHessian, answer_batches


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def mini_model(tokenizer, kind: str) -> torch.nn.Module:
    """A one-layer, width-8 causal LM in float64 with eager attention and random weights.

    gpt2 computes in float64 throughout; qwen2 (the project's architecture) runs RMSNorm and the attention softmax
    in float32 internally whatever the model dtype, so its derivatives carry float32 rounding (~1e-7 relative)."""
    torch.manual_seed(0)
    if kind == "gpt2":
        cfg = GPT2Config(vocab_size=len(tokenizer), n_embd=8, n_layer=1, n_head=2, n_positions=64,
                         attn_implementation="eager")
        model = GPT2LMHeadModel(cfg)
    else:
        cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                          attn_implementation="eager")
        model = Qwen2ForCausalLM(cfg)
    model = model.to(torch.float64).eval()
    model.requires_grad_(False)
    return model


SUBSETS = {  # parameters whose Hessian block is checked: norms, biases, a weight matrix; 32 to 48 entries
    "gpt2": ["transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.bias", "transformer.ln_f.bias"],
    "qwen2": ["model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.bias",
              "model.layers.0.self_attn.v_proj.bias", "model.norm.weight"],
}


def surrogate(tokenizer, kind: str) -> tuple[CrossEntropyHessian, list[dict]]:
    """The cross-entropy surrogate of `mini_model` on 3 arithmetic prompts with their answers (batches of 2)."""
    task = tasks.get("arithmetic")
    rows = task.rows("train")[:3]
    batches = answer_batches(tokenizer, tokenizer.eos_token_id, [task.prompt(r) for r in rows],
                             [task.reference_completion(r) for r in rows], batch_size=2, device=torch.device("cpu"))
    return CrossEntropyHessian(mini_model(tokenizer, kind), SUBSETS[kind], batches), rows


def test_answer_batches_label_only_the_reference_and_end_token(tokenizer):
    op, rows = surrogate(tokenizer, "qwen2")
    assert [b.input_ids.shape[0] for b in op.batches] == [2, 1]
    for b, row_group in zip(op.batches, (rows[:2], rows[2:])):
        for ids, mask, labels, row in zip(b.input_ids, b.attention_mask, b.labels, row_group):
            target = labels[labels != IGNORE].tolist()
            assert tokenizer.decode(target[:-1]) == row["answer"] and target[-1] == tokenizer.eos_token_id
            n = int(mask.sum())
            assert mask[:n].all() and not mask[n:].any()
            assert ids[n - len(target):n].tolist() == target  # the answer closes the real tokens
    assert op.tokens == sum(len(tokenizer(r["answer"])["input_ids"]) + 1 for r in rows)
    logits = op.model(input_ids=op.batches[1].input_ids).logits[0, :-1]
    labels = op.batches[1].labels[0, 1:]
    own = -torch.log_softmax(logits, -1)[labels != IGNORE].gather(1, labels[labels != IGNORE, None]).sum()
    total = sum(float(op._loss(op.params, b)) for b in op.batches)
    assert float(op.loss(op.params)) == pytest.approx(total, rel=1e-12)
    assert float(op._loss(op.params, op.batches[1])) == pytest.approx(float(own) / op.tokens, rel=1e-12)


@pytest.mark.parametrize("kind, rel", [("gpt2", 1e-8), ("qwen2", 1e-5)])
def test_hvp_equals_the_explicit_hessian(tokenizer, kind, rel):
    """Double-backward H v against torch.autograd.functional.hessian of the same loss, float64: to 1e-8 on a
    float64-clean model; on Qwen2 to float32 rounding (its internal float32 RMSNorm and softmax)."""
    op, _ = surrogate(tokenizer, kind)
    shapes = [p.shape for p in op.params]
    sizes = [s.numel() for s in shapes]
    theta = torch.cat([p.detach().reshape(-1) for p in op.params])

    def loss(flat):
        return op.loss([t.view(s) for t, s in zip(flat.split(sizes), shapes)])

    hessian = torch.autograd.functional.hessian(loss, theta)
    assert hessian.shape == (sum(sizes), sum(sizes)) and torch.linalg.norm(hessian) > 1e-3
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        v = torch.randn(sum(sizes), dtype=torch.float64, generator=g)
        hv = torch.cat([t.reshape(-1) for t in op.matvec([t.view(s) for t, s in zip(v.split(sizes), shapes)])])
        assert torch.linalg.norm(hv - hessian @ v) <= rel * torch.linalg.norm(hessian @ v)


def gaussian_noise(seeds, signs, shapes):
    """noise(i, t): tensor t of eps_i, regenerated from (seed_i, t) at every call, times sign_i."""
    def noise(i, t):
        g = torch.Generator().manual_seed(int(seeds[i]) * 1000 + t)
        return torch.randn(shapes[t], generator=g, dtype=torch.float32).mul_(float(signs[i]))
    return noise


def dense(op: SteinHessian, shapes) -> np.ndarray:
    """The operator's matrix, column by column from matvecs on basis vectors."""
    sizes = [s.numel() for s in shapes]
    cols = []
    for e in np.eye(sum(sizes)):
        v = [torch.from_numpy(x).view(s) for x, s in zip(np.split(e, np.cumsum(sizes)[:-1]), shapes)]
        cols.append(torch.cat([t.reshape(-1) for t in op.matvec(v)]).numpy())
    return np.array(cols).T


def test_stein_operator_estimates_a_quadratic_rewards_hessian():
    """J(theta) = b.theta + theta^T A theta / 2: E[Stein estimate] = A exactly (Gaussian smoothing of a quadratic)."""
    rng = np.random.default_rng(0)
    d, m, sigma = 5, 6000, 0.5
    q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    a = q @ np.diag([3.0, 1.5, 0.5, -1.0, -2.0]) @ q.T
    b, theta = 0.1 * rng.standard_normal(d), rng.standard_normal(d)
    reward = lambda x: b @ x + x @ a @ x / 2  # noqa: E731
    shapes = [torch.Size([2]), torch.Size([3])]  # two "parameter tensors"
    noise = gaussian_noise(np.arange(m), np.ones(m), shapes)
    eps = np.array([np.concatenate([noise(i, 0).numpy(), noise(i, 1).numpy()]) for i in range(m)], np.float64)
    deltas = np.array([reward(theta + sigma * e) - reward(theta) for e in eps])
    op = SteinHessian(noise, len(shapes), deltas, sigma)
    h = dense(op, shapes)
    samples = deltas[:, None, None] * (eps[:, :, None] * eps[:, None, :] - np.eye(d)) / sigma**2
    np.testing.assert_allclose(h, samples.mean(0), rtol=0, atol=1e-10)  # the formula, term by term
    se = samples.std(0, ddof=1) / np.sqrt(m)
    assert np.all(np.abs(h - a) < 4.5 * se), np.abs(h - a) / se
    for wrong in (2 * h, h / 2, h - op.shift * np.eye(d)):  # the check has power: a factor 2 or a lost shift fails
        assert np.any(np.abs(wrong - a) > 4.5 * se)
    np.testing.assert_allclose(h, h.T, atol=1e-12)


@pytest.mark.parametrize("antithetic", [False, True])
def test_stein_exact_spectrum_from_the_gram_matrix(antithetic):
    """Rank M plus a shift: the Gram route gives every eigenvalue of the D x D operator, and SLQ with m = M + 1
    Lanczos steps (the Krylov space is then invariant) reproduces the extremes and the summaries."""
    rng = np.random.default_rng(1)
    m, sigma, shapes = 12, 0.1, [torch.Size([10, 15]), torch.Size([50])]
    seeds = np.repeat(np.arange(m // 2), 2) if antithetic else np.arange(m)
    signs = np.tile([1, -1], m // 2) if antithetic else np.ones(m)
    op = SteinHessian(gaussian_noise(seeds, signs, shapes), len(shapes), rng.normal(0.0, 0.05, m), sigma)
    full = dense(op, shapes)
    n = full.shape[0]
    eig, shift = op.exact_spectrum()
    expected = np.sort(np.concatenate([eig.numpy(), np.full(n - m, shift)]))
    np.testing.assert_allclose(np.linalg.eigvalsh(full), expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    assert len(lanczos(full, np.ones(n), 40)[0]) <= m + 1
    result = slq(full, n, probes=64, steps=m + 1, seed=2)
    exact = summaries(np.append(eig.numpy(), shift), np.append(np.ones(m), n - m))
    got = result.summaries()
    for key in ("lambda_min", "lambda_max"):
        assert got[key] == pytest.approx(exact[key], rel=1e-9), key
    assert abs(got["trace"] - exact["trace"]) < 3 * got["trace_se"]
