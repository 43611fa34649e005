"""Gaussian noise per parameter tensor, regenerated from (member seed, tensor index)."""
from __future__ import annotations

import torch

from .seeds import tensor_seed


class NoiseSource:
    """Draws eps ~ N(0, I) for one tensor at a time, never a D-sized vector (memory: one tensor)."""

    def __init__(self, device: torch.device):
        self.generator = torch.Generator(device=device)
        self.device = device

    def draw(self, member_seed: int, tensor_index: int, shape: torch.Size) -> torch.Tensor:
        """fp32 noise of `shape` for (member seed, tensor index); identical on every call and rank."""
        self.generator.manual_seed(tensor_seed(member_seed, tensor_index))
        return torch.randn(shape, generator=self.generator, device=self.device, dtype=torch.float32)
