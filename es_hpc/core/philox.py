"""The Philox4x32-10 Gaussian stream in plain torch: the fallback where the native kernel is not built, and a reference.

It repeats native/philox_noise.h step by step (int64 arithmetic masked to 32 bits, float32 ops each rounded on its own),
so on CPU and CUDA it gives the same bits as the native kernels; tests/unit/core/test_native_noise.py checks that.
"""
from __future__ import annotations

import struct

import torch

MASK32 = 0xFFFFFFFF
M0, M1 = 0xD2511F53, 0xCD9E8D57  # Philox4x32 multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments
STREAM_VERSION = 1  # es_noise_stream_version() of a matching native library
CHUNK = 1 << 18  # counters per pass: bounds the int64 temporaries at a few MB

_h = float.fromhex  # the float32 constants of philox_noise.h, spelled the same way
L1, L2, L3, L4 = _h("0x1.555556p-2"), _h("0x1.99999ap-3"), _h("0x1.24924ap-3"), _h("0x1.c71c72p-4")
LN2 = _h("0x1.62e430p-1")
S1, S3, S5, S7, S9 = (_h("0x1.921fb6p+0"), _h("-0x1.4abbcep-1"), _h("0x1.466bc6p-4"), _h("-0x1.32d2ccp-8"),
                      _h("0x1.507834p-13"))
C2, C4, C6, C8, C10 = (_h("-0x1.3bd3ccp+0"), _h("0x1.03c1f0p-2"), _h("-0x1.55d3c8p-6"), _h("0x1.e1f506p-11"),
                       _h("-0x1.a6d1f2p-16"))


def to_float32(x: float) -> float:
    """x rounded to the nearest float32, as a Python float (what the native kernels receive)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of m * a for a < 2**32; uses m - 2**32 so the int64 product cannot overflow."""
    p = a * (m - (1 << 32))  # = m a - a 2**32, |p| < 2**63
    return (p >> 32) + a, p & MASK32


def philox4x32_10(c: list[torch.Tensor], k0: int, k1: int) -> list[torch.Tensor]:
    """Philox4x32-10 of counter words c (four int64 tensors holding uint32 values) under key (k0, k1): the
    textbook form, for known-answer tests; _philox_pairs computes the same with half the torch calls."""
    c0, c1, c2, c3 = c
    for _ in range(10):
        hi0, lo0 = _mulhilo(c0, M0)
        hi1, lo1 = _mulhilo(c2, M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
    return [c0, c1, c2, c3]


def _philox_pairs(lo: torch.Tensor, hi: torch.Tensor, k0: int, k1: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Philox4x32-10 of counters (lo, hi, 0, 0) as two (2, n) int64 tensors: (x0, x2) and (x1, x3).

    Pairs of rows halve the torch calls: `a` holds (c0, c2), the words that get multiplied, and `low` holds (c3, c1),
    which is the previous round's (lo0, lo1)."""
    keys = []
    for _ in range(10):
        keys.append((k0, k1))
        k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
    keys = torch.tensor(keys, dtype=torch.int64).view(10, 2, 1).to(lo.device)
    mult = torch.tensor([[M0 - (1 << 32)], [M1 - (1 << 32)]], dtype=torch.int64, device=lo.device)
    zero = torch.zeros_like(lo)
    a = torch.stack([lo, zero])  # (c0, c2)
    low = torch.stack([zero, hi])  # (c3, c1)
    for r in range(10):
        p = a * mult  # m c - c 2**32, no int64 overflow (see _mulhilo)
        high = (p >> 32).add_(a)  # (hi0, hi1)
        # c0' = hi1 ^ c1 ^ k0, c2' = hi0 ^ c3 ^ k1: flip (hi0 ^ c3, hi1 ^ c1); c1' = lo1, c3' = lo0
        a = high.bitwise_xor_(low).flip(0).bitwise_xor_(keys[r])
        low = p.bitwise_and_(MASK32)
    return a, low.flip(0)


def _uniform(x: torch.Tensor) -> torch.Tensor:
    """((x >> 8) | 1) * 2**-24: float32 in (0, 1), exact."""
    return ((x >> 8) | 1).to(torch.float32).mul_(2.0 ** -24)


def _log_unit(u: torch.Tensor) -> torch.Tensor:
    """ln u for u in (0, 1), as es_log_unit."""
    ix = u.view(torch.int32) - 0x3F3504F3
    e = (ix >> 23).to(torch.float32)
    m = ix.bitwise_and_(0x007FFFFF).add_(0x3F3504F3).view(torch.float32)
    f = m.sub_(1.0)
    s = f / (f + 2.0)
    z = s * s
    r = (z * L4).add_(L3).mul_(z).add_(L2).mul_(z).add_(L1).mul_(z)
    s2 = s.add_(s)
    return e.mul_(LN2).add_(r.mul_(s2).add_(s2))


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 sqrt, as the native kernels' sqrt instruction: torch's vectorised float32 sqrt can be
    an ulp off, so take the float64 root and round it. That is exact: for float32 x, sqrt(x) lies at least 4 float64
    ulps from any midpoint between float32 neighbours (x - mid^2 is an odd multiple of a quarter float32 ulp^2), far
    more than the error of any float64 sqrt, so the rounding to float32 cannot go the wrong way."""
    return torch.sqrt(x.double()).float()


def _box_muller(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r cos, r sin) from words a (radius) and b (angle), as es_box_muller."""
    rad = _sqrt(_log_unit(_uniform(a)).mul_(-2.0))
    k = (b >> 8).bitwise_or_(1)
    j = (k + (1 << 21)) >> 22
    v = k.sub_(j << 22).to(torch.float32).mul_(2.0 ** -22)
    v2 = v * v
    sn = (v2 * S9).add_(S7).mul_(v2).add_(S5).mul_(v2).add_(S3).mul_(v2).add_(S1).mul_(v)
    cs = (v2 * C10).add_(C8).mul_(v2).add_(C6).mul_(v2).add_(C4).mul_(v2).add_(C2).mul_(v2).add_(1.0)
    swap = (j & 1).bool()
    x, y = torch.where(swap, sn, cs), torch.where(swap, cs, sn)
    x = torch.where(((j + 1) & 2).bool(), x.neg(), x)
    y = torch.where((j & 2).bool(), y.neg(), y)
    return x.mul_(rad), y.mul_(rad)


def _normals(first: int, count: int, k0: int, k1: int, device: torch.device) -> torch.Tensor:
    """The 4 * count normals of counters first .. first + count - 1, in element order."""
    c = torch.arange(first, first + count, dtype=torch.int64, device=device)
    radius, angle = _philox_pairs(c & MASK32, c >> 32, k0, k1)  # (x0, x2), (x1, x3)
    zc, zs = _box_muller(radius, angle)  # (z0, z2), (z1, z3)
    return torch.stack([zc, zs], dim=2).transpose(0, 1).reshape(-1)


def _normals_at(idx: torch.Tensor, k0: int, k1: int) -> torch.Tensor:
    """The stream's elements at flat positions `idx` (int64): counter idx // 4, word pair (idx // 2) % 2, then
    r cos or r sin by idx % 2; the same float32 ops per element as _normals, so the same bits."""
    c = idx >> 2
    radius, angle = _philox_pairs(c & MASK32, c >> 32, k0, k1)  # rows (x0, x2) and (x1, x3)
    second = (idx & 2).bool()
    zc, zs = _box_muller(torch.where(second, radius[1], radius[0]), torch.where(second, angle[1], angle[0]))
    return torch.where((idx & 1).bool(), zs, zc)


@torch.no_grad()
def axpy_normal_at(out: torch.Tensor, base: torch.Tensor | None, key: int, scale: float, offset: int,
                   stride: tuple[int, ...]) -> torch.Tensor:
    """out = base + scale * eps (base None: scale * eps) where out's element at multi-index k takes the stream's
    element offset + sum_d k_d stride_d: a shard of a larger tensor, bit for bit that part of its full draw."""
    o = out.view(-1)
    b = None if base is None else base.view(-1)
    k0, k1 = key & MASK32, (key >> 32) & MASK32
    scale, n = to_float32(scale), o.numel()
    for lo in range(0, n, 4 * CHUNK):
        hi = min(n, lo + 4 * CHUNK)
        pos = torch.arange(lo, hi, dtype=torch.int64, device=out.device)
        idx = torch.full_like(pos, offset)
        for size, step in zip(reversed(out.shape), reversed(stride)):
            idx += pos % size * step
            pos = pos.div_(size, rounding_mode="floor")
        eps = _normals_at(idx, k0, k1).mul_(scale)
        o[lo:hi] = eps if b is None else eps.add_(b[lo:hi])
    return out


@torch.no_grad()
def fill_normal(out: torch.Tensor, key: int) -> torch.Tensor:
    """Fill contiguous fp32 `out` with elements 0 .. numel-1 of the stream of 64-bit `key`; returns out."""
    flat = out.view(-1)
    n = flat.numel()
    k0, k1 = key & MASK32, (key >> 32) & MASK32
    counters = (n + 3) // 4
    for first in range(0, counters, CHUNK):
        count = min(CHUNK, counters - first)
        lo, hi = 4 * first, min(n, 4 * (first + count))
        flat[lo:hi] = _normals(first, count, k0, k1, out.device)[: hi - lo]
    return out


@torch.no_grad()
def axpy_normal(out: torch.Tensor, base: torch.Tensor, key: int, scale: float) -> torch.Tensor:
    """out = base + scale * eps (eps the stream of `key`), float32, chunk by chunk; out may be base. Returns out.

    scale * eps and the add are two separately rounded float32 ops, exactly as the native kernels do them."""
    o, b = out.view(-1), base.view(-1)
    n = o.numel()
    k0, k1 = key & MASK32, (key >> 32) & MASK32
    scale = to_float32(scale)
    counters = (n + 3) // 4
    for first in range(0, counters, CHUNK):
        count = min(CHUNK, counters - first)
        lo, hi = 4 * first, min(n, 4 * (first + count))
        eps = _normals(first, count, k0, k1, out.device)[: hi - lo].mul_(scale)
        o[lo:hi] = eps.add_(b[lo:hi])
    return out
