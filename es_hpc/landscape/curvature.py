"""Curvature operators v -> H v on lists of torch tensors, for SLQ (paper Algorithm 3, Appendix G.10).

Two operators over the perturbed parameters (one tensor per parameter, the order of PerturbedParams):
  CrossEntropyHessian: autograd Hessian-vector products (double backward) of a differentiable surrogate, the mean
    token cross-entropy of reference completions on a fixed prompt set;
  SteinHessian: the perturbation estimator of the Hessian of J_sigma, no autograd (Appendix G.10),
    H v = 1/(M sigma^2) sum_i d_i (eps_i (eps_i . v) - v),  d_i = J(theta + sigma eps_i) - J(theta),
    with every eps_i regenerated tensor by tensor from its seed at each matvec (never M D-sized vectors).
FlatOperator presents either as v -> H v on flat float64 vectors, the form analysis.slq.lanczos iterates.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call

IGNORE = -100  # label of a position that does not enter the loss (prompt and padding)


@dataclass
class AnswerBatch:
    """Prompt + reference tokens, right-padded; labels are the reference tokens (IGNORE elsewhere)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


def answer_batches(tokenizer, end_id: int, conversations: list[list[dict]], references: list[str], batch_size: int,
                   device: torch.device) -> list[AnswerBatch]:
    """Each conversation through the chat template (with the assistant's generation prompt, as the backend encodes
    prompts), followed by its reference completion's tokens and the end token; only those last tokens are labelled."""
    rows = []
    for conv, ref in zip(conversations, references):
        prompt = tokenizer(tokenizer.apply_chat_template(conv, add_generation_prompt=True, tokenize=False),
                           add_special_tokens=False)["input_ids"]
        answer = tokenizer(ref, add_special_tokens=False)["input_ids"] + [end_id]
        rows.append((prompt + answer, [IGNORE] * len(prompt) + answer))
    batches = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    for s in range(0, len(rows), batch_size):
        chunk = rows[s:s + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        for i, (x, y) in enumerate(chunk):
            ids[i, :len(x)], mask[i, :len(x)], labels[i, :len(y)] = torch.tensor(x), 1, torch.tensor(y)
        batches.append(AnswerBatch(ids.to(device), mask.to(device), labels.to(device)))
    return batches


class CrossEntropyHessian:
    """Hessian of L(theta) = mean over all reference tokens of -log p(token | prefix), w.r.t. the named parameters.

    The model must run an attention implementation with a double backward (eager; the CPU SDPA kernel has none).
    """

    def __init__(self, model: torch.nn.Module, names: list[str], batches: list[AnswerBatch]):
        self.model, self.names, self.batches = model, list(names), batches
        params = dict(model.named_parameters())
        self.params = [params[n] for n in self.names]
        self.tokens = int(sum(int((b.labels != IGNORE).sum()) for b in batches))

    def _loss(self, tensors, batch: AnswerBatch) -> torch.Tensor:
        """Summed token cross-entropy of one batch, divided by the token count of all batches."""
        logits = functional_call(self.model, dict(zip(self.names, tensors)),
                                 kwargs={"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}).logits
        return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), batch.labels[:, 1:],
                                                 ignore_index=IGNORE, reduction="sum") / self.tokens

    def loss(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """L at the parameter values `tensors` (differentiable in them)."""
        return sum(self._loss(tensors, b) for b in self.batches)

    def matvec(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        """H v by double backward, accumulated batch by batch (H is linear in the loss)."""
        out = [torch.zeros_like(p) for p in self.params]
        for batch in self.batches:
            primals = [p.detach().requires_grad_(True) for p in self.params]
            grads = torch.autograd.grad(self._loss(primals, batch), primals, create_graph=True)
            for o, hv in zip(out, torch.autograd.grad(grads, primals, grad_outputs=v)):
                o.add_(hv)
        return out


class SteinHessian:
    """The perturbation (Stein) estimator of the Hessian of J_sigma (Appendix G.10), rank <= M plus a shift.

    noise(i, t) returns tensor t of eps_i (identical on every call); deltas[i] = J(theta + sigma eps_i) - J(theta).
    """

    def __init__(self, noise: Callable[[int, int], torch.Tensor], n_tensors: int, deltas, sigma: float,
                 dtype: torch.dtype = torch.float64):
        self.noise, self.n_tensors, self.dtype = noise, n_tensors, dtype
        self.deltas = torch.as_tensor(deltas, dtype=torch.float64)
        self.scale = 1.0 / (len(self.deltas) * sigma**2)
        self.shift = -float(self.deltas.sum()) * self.scale  # the "- v" terms: H = E diag(d) E^T / (M sigma^2) + shift I
        self._gram_root: torch.Tensor | None = None

    def _eps(self, i: int, t: int, like: torch.Tensor) -> torch.Tensor:
        return self.noise(i, t).to(like.device, self.dtype)

    def matvec(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        """Two passes over the candidates, one tensor at a time: u_i = eps_i . v, then sum_i c_i u_i eps_i + shift v."""
        u = [sum(float(torch.sum(self._eps(i, t, x) * x)) for t, x in enumerate(v)) for i in range(len(self.deltas))]
        c = [float(d) * self.scale * ui for d, ui in zip(self.deltas, u)]
        out = [x.to(self.dtype) * self.shift for x in v]
        for t, o in enumerate(out):
            for i, ci in enumerate(c):
                if ci != 0.0:
                    o.add_(self._eps(i, t, o), alpha=ci)
        return out

    def gram(self) -> torch.Tensor:
        """G_ij = eps_i . eps_j (M x M, float64), one parameter tensor at a time (memory: M copies of one tensor)."""
        m = len(self.deltas)
        g = torch.zeros((m, m), dtype=torch.float64)
        for t in range(self.n_tensors):
            e = torch.stack([self.noise(i, t).reshape(-1).to(torch.float64) for i in range(m)])
            g += (e @ e.T).cpu()
        return g

    def _root(self) -> torch.Tensor:
        """G^1/2 (symmetric, negative rounding eigenvalues clipped), computed once: every spectrum below shares it."""
        if self._gram_root is None:
            lam, q = torch.linalg.eigh(self.gram())
            self._gram_root = (q * lam.clamp(min=0).sqrt()) @ q.T
        return self._gram_root

    def _spectrum(self, deltas: torch.Tensor) -> torch.Tensor:
        """Ascending eigenvalues of G^1/2 diag(deltas) G^1/2 / (M sigma^2) + shift."""
        root = self._root()
        inner = root @ torch.diag(deltas) @ root
        return torch.linalg.eigvalsh((inner + inner.T) / 2) * self.scale + self.shift

    def exact_spectrum(self) -> tuple[torch.Tensor, float]:
        """The M eigenvalues of H that the eps_i span (ascending) and the shift, H's eigenvalue on their complement.

        The nonzero eigenvalues of E diag(d) E^T are those of diag(d) G, computed symmetrically as the eigenvalues of
        G^1/2 diag(d) G^1/2; H's full spectrum is these times 1/(M sigma^2) plus the shift, and the shift with
        multiplicity D - M.
        """
        return self._spectrum(self.deltas), self.shift

    def null_spectra(self, perms) -> torch.Tensor:
        """(P, M): row p is the spectrum of exact_spectrum with d permuted among the candidates by perms[p] (the
        Stein null: the same eps_i and Gram matrix, dR assigned to other directions). The shift, -sum d/(M sigma^2),
        is permutation invariant, so it is shared with the real spectrum."""
        rows = [self._spectrum(self.deltas[torch.as_tensor(np.asarray(p), dtype=torch.long)]) for p in perms]
        return torch.stack(rows) if rows else torch.zeros((0, len(self.deltas)), dtype=torch.float64)


class FlatOperator:
    """A tensor-list operator seen as v -> A v on flat float64 numpy vectors (what analysis.slq.lanczos needs)."""

    def __init__(self, matvec, shapes: list[torch.Size], device: torch.device, dtype: torch.dtype):
        self.apply, self.shapes, self.device, self.dtype = matvec, shapes, device, dtype
        self.splits = np.cumsum([s.numel() for s in shapes])[:-1]
        self.calls = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        v = [torch.from_numpy(part).view(s).to(self.device, self.dtype) for part, s in
             zip(np.split(x, self.splits), self.shapes)]
        return np.concatenate([t.detach().reshape(-1).to("cpu", torch.float64).numpy() for t in self.apply(v)])
