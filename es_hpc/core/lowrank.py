"""Low-rank perturbations (es.perturbation: lowrank), a variant of the paper's isotropic method after EGGROLL.

Member k perturbs a weight matrix W (out x in) by scale * A_k B_k^T / sqrt(r), with A_k (out x r) and B_k (in x r)
drawn N(0, I) from (member seed, tensor index) like isotropic noise; each entry of A_k B_k^T / sqrt(r) has unit
variance, so sigma keeps its meaning. Tensors that are not matrices (norm weights, biases) keep isotropic noise.
The update theta += sum_k c_k A_k B_k^T / sqrt(r) is one (out x Nr) @ (Nr x in) product per matrix.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .params import PerturbedParams


class LowRankParams(PerturbedParams):
    """PerturbedParams whose matrices get rank-r noise: the same masters, restore, checkpoints and checksum."""

    def __init__(self, selected, rank: int, master_device: str = "same"):
        super().__init__(selected, master_device)
        self.rank = rank
        self.is_matrix = [m.dim() == 2 for m in self.masters]

    def factors(self, member_seed: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of member_seed for matrix j (the j-th selected tensor): one draw of (out + in) x r, split."""
        out, inp = self.masters[j].shape
        ab = self.noise.draw(member_seed, self.indices[j], (out + inp, self.rank))
        return ab[:out], ab[out:]

    def direction(self, member_seed: int, j: int) -> torch.Tensor:
        """Member's unit-scale perturbation of tensor j, materialised: A B^T / sqrt(r) for a matrix, else eps."""
        if not self.is_matrix[j]:
            return self.noise.draw(member_seed, self.indices[j], self.masters[j].shape)
        a, b = self.factors(member_seed, j)
        return (a @ b.T).div_(math.sqrt(self.rank))

    @torch.no_grad()
    def perturb(self, member_seed: int, scale: float) -> None:
        """theta <- master + scale * direction, written into the model (the per-member loop; the batched
        population adds the low-rank term in its forward pass instead)."""
        for j, (w, m) in enumerate(zip(self.working, self.masters)):
            w.copy_(self.direction(member_seed, j).mul_(scale).add_(m))

    @torch.no_grad()
    def update(self, seeds: np.ndarray, coefficients: np.ndarray) -> None:
        """master += sum_k c_k direction_k (fp32, in member order for the isotropic tensors), then restore."""
        live = [(int(s), float(c)) for s, c in zip(seeds, coefficients) if c != 0.0]
        for j, m in enumerate(self.masters if live else []):
            if self.is_matrix[j]:
                pairs = [self.factors(s, j) for s, _ in live]
                a = torch.cat([p[0] * c for p, (_, c) in zip(pairs, live)], dim=1)  # out x (N r)
                b = torch.cat([p[1] for p in pairs], dim=1)  # in x (N r)
                m.addmm_(a, b.T, alpha=1.0 / math.sqrt(self.rank))
            else:
                for s, c in live:
                    m.add_(self.noise.draw(s, self.indices[j], m.shape), alpha=c)
        for w, m in zip(self.working, self.masters):
            w.copy_(m)
