"""Gaussian noise per parameter tensor, regenerated from (member seed, tensor index) by a counter-based generator.

The stream (version philox.STREAM_VERSION): key = tensor_seed(member_seed, tensor_index), a 64-bit integer, split into
the words k0 = key & 0xffffffff and k1 = key >> 32. Element i of a tensor (flattened, row-major) comes from counter
c = i // 4: Philox4x32-10 (Random123) of the counter words (c & 0xffffffff, c >> 32, 0, 0) under key (k0, k1) gives
words x0..x3; each word maps to u = ((x >> 8) | 1) * 2^-24, float32 in (0, 1), exact, never 0 or 1. Box-Muller turns
the pairs (x0, x1) and (x2, x3) into elements 4c, 4c+1 and 4c+2, 4c+3: with r = sqrt(-2 ln u_a), angle 2 pi u_b,
element 4c + 2p = r cos, 4c + 2p + 1 = r sin. ln, sin and cos are fixed float32 polynomials evaluated with correctly
rounded + - * / sqrt only (native/philox_noise.h), so every implementation gives the same bits:

  native-openmp  native/philox_noise*.cpp (OpenMP + AVX2/AVX-512, fused with the axpy), for CPU tensors
  native-cuda    native/philox_noise.cu, for CUDA tensors
  torch          es_hpc/core/philox.py, the fallback where no library is built (or ES_HPC_NOISE=torch)

They agree bit for bit (tests/unit/core/test_native_noise.py); still, every rank of a run should use the same one, so
NoiseSource.implementation says which ran, for the run to record.

A Region draws part of a tensor's stream (a tensor-parallel shard of it): bit for bit those elements of the full draw.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from . import native, philox
from .seeds import tensor_seed


@dataclass(frozen=True)
class Region:
    """Which elements of a tensor's stream a (smaller) tensor holds: its element at multi-index k is the stream's
    element offset + sum_d k_d stride_d."""

    offset: int
    stride: tuple[int, ...]

    def is_prefix(self, shape: torch.Size) -> bool:
        """Elements 0 .. numel-1 in order, what every implementation draws (the torch fallback draws the rest)."""
        return self.offset == 0 and all(s == c or n == 1 for s, c, n in
                                        zip(self.stride, torch.empty(shape, device="meta").stride(), shape))


class NoiseSource:
    """Draws eps ~ N(0, I) for one tensor at a time, never a D-sized vector (memory: one tensor)."""

    def __init__(self, device: torch.device | str, implementation: str | None = None):
        """implementation: None picks as ES_HPC_NOISE says (native where built); "torch" forces the fallback;
        "native" (or the device's native name) requires the library."""
        self.device = torch.device(device)
        cuda, known = self.device.type == "cuda", self.device.type in ("cpu", "cuda")
        if implementation is None:
            required = native.mode() == "native"
            self._lib = native.library(cuda) if known else None
        elif implementation == "torch":
            required, self._lib = False, None
        elif implementation in ("native", "native-cuda" if cuda else "native-openmp") and known:
            required, self._lib = True, native.load(cuda, required=True)
        else:
            raise ValueError(f"NoiseSource: no implementation {implementation!r} for device {self.device}")
        if self._lib is not None and cuda:  # built, but can it run here (driver, architecture)?
            index = torch.cuda.current_device() if self.device.index is None else self.device.index
            err = self._lib.es_cuda_probe(index)
            if err:
                why = f"CUDA noise kernel cannot run on cuda:{index}: {self._lib.es_cuda_error_string(err).decode()}"
                if required:
                    raise native.NativeNoiseError(why)
                warnings.warn(f"{why}; using the torch fallback", stacklevel=2)
                self._lib = None
        self.implementation = "torch" if self._lib is None else "native-cuda" if cuda else "native-openmp"

    def draw(self, member_seed: int, tensor_index: int, shape: torch.Size,
             region: Region | None = None) -> torch.Tensor:
        """fp32 noise of `shape` for (member seed, tensor index), or its `region`; identical on every call and rank."""
        out = torch.empty(shape, dtype=torch.float32, device=self.device)
        key = tensor_seed(member_seed, tensor_index)
        if region is not None and not region.is_prefix(out.shape):
            return philox.axpy_normal_at(out, None, key, 1.0, region.offset, region.stride)
        if self._lib is None:
            return philox.fill_normal(out, key)
        self._native(out, None, key, 1.0)
        return out

    def axpy(self, out: torch.Tensor, base: torch.Tensor, member_seed: int, tensor_index: int, scale: float,
             region: Region | None = None) -> None:
        """out = base + scale * eps(member seed, tensor index), fused (eps never stored); out may be base. With a
        `region`, eps is that part of the tensor's stream (drawn by the torch code unless it is a prefix).

        Both fp32, contiguous, same shape, on this source's device; scale * eps and the add are rounded separately."""
        if out.dtype != torch.float32 or base.dtype != torch.float32:
            raise TypeError(f"NoiseSource.axpy needs float32 tensors, got {out.dtype} and {base.dtype}")
        if out.shape != base.shape or not (out.is_contiguous() and base.is_contiguous()):
            raise ValueError("NoiseSource.axpy needs contiguous tensors of one shape")
        if out.device != base.device or out.device.type != self.device.type:
            raise ValueError(f"NoiseSource.axpy: tensors on {out.device} and {base.device}, source on {self.device}")
        key, scale = tensor_seed(member_seed, tensor_index), float(scale)
        if region is not None and not region.is_prefix(out.shape):
            philox.axpy_normal_at(out, base, key, scale, region.offset, region.stride)
        elif self._lib is None:
            philox.axpy_normal(out, base, key, scale)
        else:
            self._native(out, base, key, scale)

    def _native(self, out: torch.Tensor, base: torch.Tensor | None, key: int, scale: float) -> None:
        """One call of the native kernel (base None: out = scale * eps)."""
        n = out.numel()
        b = None if base is None else base.data_ptr()
        if self.device.type == "cuda":
            stream = torch.cuda.current_stream(out.device)
            err = self._lib.es_axpy_normal_cuda(out.data_ptr(), b, n, key, scale, out.device.index, stream.cuda_stream)
            if err:
                raise RuntimeError(f"es_axpy_normal_cuda: {self._lib.es_cuda_error_string(err).decode()}")
        else:
            self._lib.es_axpy_normal(out.data_ptr(), b, n, key, scale, torch.get_num_threads())
