"""The perturbed parameters: in-place perturb, bit-exact restore and the ES update via fp32 masters."""
from __future__ import annotations

import fnmatch

import numpy as np
import torch

from .noise import NoiseSource, Region


def select(named: list[tuple[str, torch.Tensor]], patterns: list[str]) -> list[tuple[int, str, torch.Tensor]]:
    """(tensor index, name, tensor) of the parameters matching any pattern; the index is the
    position among all parameters, so a tensor's noise does not depend on which others are chosen."""
    chosen = [(i, n, p) for i, (n, p) in enumerate(named) if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if not chosen:
        raise ValueError(f"es.params: no parameter matches {patterns}")
    return chosen


class PerturbedParams:
    """Working tensors (inside the model) plus fp32 master copies.

    perturb writes (master + s * eps).to(dtype) into the working tensor, restore writes master.to(dtype)
    back, and the update goes into the master, so restore is bit-exact in any dtype.
    """

    def __init__(self, selected: list[tuple[int, str, torch.Tensor]], master_device: str = "same",
                 regions: list[Region | None] | None = None):
        """regions[j], when given, says which part of its tensor's noise stream tensor j holds (a shard of it);
        None: all. A region that is the stream's first numel elements in order is dropped here, once, so that
        perturb and update take the whole-tensor kernels without testing it per call."""
        self.indices = [i for i, _, _ in selected]
        self.names = [n for _, n, _ in selected]
        self.working = [p.data for _, _, p in selected]
        self.regions = [None if r is None or r.is_prefix(w.shape) else r
                        for r, w in zip(regions or [None] * len(selected), self.working)]
        device = self.working[0].device
        mdev = torch.device("cpu") if master_device == "cpu" else device
        self.masters = [w.detach().to(mdev, torch.float32, copy=True) for w in self.working]
        self.noise = NoiseSource(mdev)

    @property
    def numel(self) -> int:
        return sum(m.numel() for m in self.masters)

    @torch.no_grad()
    def perturb(self, member_seed: int, scale: float) -> None:
        """theta <- master + scale * eps(member_seed), one tensor at a time (scale = sign * sigma).

        Fused: straight into the working tensor when it is contiguous fp32 beside its master, else via a temporary."""
        for i, w, m, r in zip(self.indices, self.working, self.masters, self.regions):
            if w.dtype == torch.float32 and w.device == m.device and w.is_contiguous():
                self.noise.axpy(w, m, member_seed, i, scale, r)
            else:
                t = self._scratch(m)
                self.noise.axpy(t, m, member_seed, i, scale, r)
                w.copy_(t)

    @torch.no_grad()
    def restore(self) -> None:
        """theta <- master, exactly."""
        for w, m in zip(self.working, self.masters):
            w.copy_(m)

    @torch.no_grad()
    def update(self, seeds: np.ndarray, coefficients: np.ndarray) -> None:
        """master += sum_k c_k eps_k accumulated in fp32 in member order, then restore (Algorithm 1).

        Every rank calls this with the same seeds and coefficients, so every rank ends bit-identical."""
        for i, w, m, r in zip(self.indices, self.working, self.masters, self.regions):
            acc = self._scratch(m).zero_()
            for seed, c in zip(seeds, coefficients):
                if c != 0.0:
                    self.noise.axpy(acc, acc, int(seed), i, float(c), r)  # acc += c eps, fused
            m.add_(acc)
            w.copy_(m)

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        """An fp32 temporary shaped like `like` (a master), from one buffer kept for the largest master: a fresh
        CPU allocation per tensor and call cost more in page faults than the noise itself."""
        buf = getattr(self, "_buffer", None)
        if buf is None or buf.device != like.device or buf.numel() < like.numel():
            buf = self._buffer = torch.empty(max(m.numel() for m in self.masters), dtype=torch.float32,
                                             device=like.device)
        return buf[: like.numel()].view(like.shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fp32 masters by parameter name (what a checkpoint needs to resume bit-exactly)."""
        return {n: m.cpu() for n, m in zip(self.names, self.masters)}

    @torch.no_grad()
    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set masters (and working tensors) from name -> tensor; every perturbed name must be there."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise KeyError(f"checkpoint lacks parameters: {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        for n, w, m in zip(self.names, self.working, self.masters):
            m.copy_(tensors[n].to(torch.float32))
            w.copy_(m)

    def checksum(self) -> int:
        """checksum() of the masters."""
        return checksum(self.masters)


@torch.no_grad()
def checksum(tensors: list[torch.Tensor]) -> int:
    """Sum of fp32 tensors' bit patterns as integers, mod 2**52: exact and independent of reduction order, so ranks
    with bit-identical weights always agree, and it fits a float64 all-reduce exactly."""
    return sum(int(t.view(torch.int32).to(torch.int64).sum().item()) for t in tensors) % (1 << 52)
