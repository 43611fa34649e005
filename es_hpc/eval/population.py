"""Batched population evaluation: K members' perturbed models answer K copies of the prompt batch in one call.

The batch is member-major (rows k*P .. (k+1)*P - 1 belong to member k). Every module that owns perturbed
parameters gets a forward that splits its input into the K members' rows:
- isotropic noise: member k's rows run the module with member k's perturbed copy of its parameters (stacked
  copies, written by the same perturb as the per-member loop, so the arithmetic is the loop's, row for row);
- low-rank noise: Linear and Embedding modules run once with the base weights, plus each member's
  scale * (x B_k) A_k^T / sqrt(r) term (for an embedding: A_k[ids] B_k^T), so the base weights never change.
Modules without perturbed parameters (attention, activations) simply see a K times larger batch.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from ..config import ConfigError
from ..core.lowrank import LowRankParams


def _owners(model: torch.nn.Module, perturbed) -> list[tuple[torch.nn.Module, list[tuple[str, int]]]]:
    """(module, [(parameter name in the module, index among the perturbed tensors)]) for every module that owns
    perturbed parameters directly; a tied weight (an LM head sharing the embedding) appears under both modules."""
    slot = {w.data_ptr(): j for j, w in enumerate(perturbed.working)}
    owners = []
    for module in model.modules():
        own = [(name, slot[p.data_ptr()]) for name, p in module.named_parameters(recurse=False, remove_duplicate=False)
               if p.data_ptr() in slot]
        if own:
            owners.append((module, own))
    return owners


def member_bytes(perturbed) -> int:
    """Memory one more member of a batched call needs: a copy of the perturbed tensors (isotropic), or the
    factors of the matrices plus copies of the other tensors (low-rank)."""
    if isinstance(perturbed, LowRankParams):
        return sum((sum(m.shape) * perturbed.rank if mat else m.numel()) * 4
                   for m, mat in zip(perturbed.masters, perturbed.is_matrix))
    return sum(w.numel() * w.element_size() for w in perturbed.working)


def members_per_call(requested: int, memory_mb: int, batch_size: int, perturbed, prompts: int,
                     device: torch.device) -> int:
    """Members per batched call: `requested`, or with 0 on a GPU as many as fit in batch_size rows of `prompts`
    prompts and in memory_mb of stacked copies or factors. 0 on the CPU is 1 (the per-member loop): generation is
    compute-bound there, and `python -m es_hpc bench` measures batching slower (README, Performance)."""
    if requested:
        return requested
    if device.type != "cuda":
        return 1
    return max(1, min(batch_size // prompts, memory_mb * 2**20 // max(member_bytes(perturbed), 1)))


def _split(value, k: int, rows: int):
    """The k members' row blocks of a forward argument whose first dimension is the whole batch, else None."""
    if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == rows:
        size = rows // k
        return list(value.split(size))
    return None


def _per_member(module, forward, params: list[dict], args, kwargs):
    """Run `forward` (the module's own) once per member on its rows with that member's parameters, and concatenate."""
    k = len(params)
    rows = args[0].shape[0]
    parts = [_split(a, k, rows) for a in args]
    kparts = {key: _split(v, k, rows) for key, v in kwargs.items()}
    own = {name: module._parameters[name] for name in params[0]}
    outs = []
    try:
        for i, p in enumerate(params):
            module._parameters.update(p)
            a = [s[i] if s is not None else v for v, s in zip(args, parts)]
            kw = {key: (kparts[key][i] if kparts[key] is not None else v) for key, v in kwargs.items()}
            outs.append(forward(*a, **kw))
    finally:
        module._parameters.update(own)
    return torch.cat(outs)


def _low_rank_term(module, x: torch.Tensor, factors: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Each member's scale * (x B) A^T / sqrt(r) (Linear) or scale * A[ids] B^T / sqrt(r) (Embedding), stacked
    over members in the batch's row order; `factors` are scale * A / sqrt(r) (K x out x r; an embedding's
    K x vocab x r) and B (K x in x r; K x hidden x r), stacked over the K members."""
    a, b = factors
    k = a.shape[0]
    xs = x.reshape(k, -1, *x.shape[1:])
    if isinstance(module, torch.nn.Embedding):
        rows = torch.stack([a[i][xs[i]] for i in range(k)])  # K x rows x ... x r
        term = (rows.flatten(1, -2) @ b.transpose(1, 2)).reshape(*x.shape, -1)
        scale = getattr(module, "embed_scale", None)  # Gemma's embedding scales its rows by sqrt(hidden)
        return term if scale is None else term * scale.to(term.dtype)
    flat = xs.reshape(k, -1, x.shape[-1]).to(a.dtype)
    return ((flat @ b) @ a.transpose(1, 2)).reshape(*x.shape[:-1], -1)


@contextmanager
def members(model: torch.nn.Module, perturbed, seeds, scales):
    """Within the block, `model` evaluates member i (seed seeds[i], scale scales[i]) on rows i*P .. (i+1)*P - 1 of
    a batch of len(seeds) * P rows. On exit the modules are back to their own forward and weights."""
    owners = _owners(model, perturbed)
    low_rank = isinstance(perturbed, LowRankParams)
    copies: dict[int, list[torch.Tensor]] = {}  # perturbed tensor index -> member's copy, in model dtype
    factors: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    with torch.no_grad():
        if low_rank:  # factors for the matrices, and each member's copy of the other tensors as its perturb makes it
            root = math.sqrt(perturbed.rank)
            for j, (w, m) in enumerate(zip(perturbed.working, perturbed.masters)):
                for seed, scale in zip(seeds, scales):
                    if perturbed.is_matrix[j]:
                        a, b = perturbed.factors(int(seed), j)
                        a = a.mul_(float(scale) / root).to(w.device, w.dtype)
                        factors.setdefault(j, []).append((a, b.to(w.device, w.dtype)))
                    else:
                        copy = perturbed.direction(int(seed), j).mul_(float(scale)).add_(m).to(w.device, w.dtype)
                        copies.setdefault(j, []).append(copy)
        else:
            for seed, scale in zip(seeds, scales):  # the loop's own perturb, so each copy is the loop's weights
                perturbed.perturb(int(seed), float(scale))
                for j, w in enumerate(perturbed.working):
                    copies.setdefault(j, []).append(w.clone())
            perturbed.restore()
    factors = {j: (torch.stack([a for a, _ in f]), torch.stack([b for _, b in f])) for j, f in factors.items()}
    for module, own in owners:
        if any(j in factors for _, j in own) and not isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            name = next(name for name, j in own if j in factors)
            raise ConfigError(f"es.perturbation: lowrank noise applies to Linear and Embedding weights, but "
                              f"{type(module).__name__} owns matrix {name}; leave it out of es.params")
    patched = []
    for module, own in owners:
        full = [(name, j) for name, j in own if j not in factors]
        lr = [(name, j) for name, j in own if j in factors]
        module.forward = _forward(module, full, lr, copies, factors, len(seeds))
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward  # back to the class's forward


def _forward(module, full, lr, copies, factors, k):
    """The forward of one module inside `members`: per-member copies for `full`, low-rank terms for `lr`."""
    original = type(module).forward.__get__(module)
    params = [{name: copies[j][i] for name, j in full} for i in range(k)]  # built once per call, not per token

    def forward(*args, **kwargs):
        if full:
            out = _per_member(module, original, params, args, kwargs)
        else:
            out = original(*args, **kwargs)
        for _, j in lr:
            out = out + _low_rank_term(module, args[0], factors[j]).to(out.dtype)
        return out
    return forward
