"""The Philox noise stream: native CPU (and CUDA) kernels vs the torch fallback, bit for bit, and its statistics."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import torch

from es_hpc.core import native, philox
from es_hpc.core.noise import NoiseSource
from es_hpc.core.seeds import tensor_seed

REQUIRED = os.environ.get("ES_HPC_REQUIRE_NATIVE") == "1"
SIZES = [1, 2, 3, 4, 5, 255, 256, 257, 1000, 4 * 64 * 7 + 3, 100_003, (1 << 20) + 1]

# Random123's kat_vectors for philox4x32_10: counter (4 words), key (2 words) -> output (4 words).
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def _need(cuda: bool = False):
    """The native library, or skip (fail under ES_HPC_REQUIRE_NATIVE=1) saying why it is missing."""
    why = native.why_missing(cuda)
    if why is None:
        return native.load(cuda)
    if REQUIRED:
        pytest.fail(f"ES_HPC_REQUIRE_NATIVE=1 but {why}: {native.BUILD_HINT}")
    pytest.skip(f"native noise library not built ({why}): {native.BUILD_HINT}")


@pytest.fixture
def lib():
    return _need()


def _native(n: int, key: int, base: torch.Tensor | None = None, scale: float = 1.0, threads: int = 0) -> torch.Tensor:
    out = torch.empty(n, dtype=torch.float32)
    native.load().es_axpy_normal(out.data_ptr(), None if base is None else base.data_ptr(), n, key, scale, threads)
    return out


def test_philox_known_answers_torch():
    for c, k, expected in KAT:
        words = philox.philox4x32_10([torch.tensor([x], dtype=torch.int64) for x in c], *k)
        assert [int(w) for w in words] == expected
        lo, hi = torch.tensor([c[0]]), torch.tensor([c[1]])
        if c[2:] == [0, 0]:  # the paired form used by the stream only takes counters (lo, hi, 0, 0)
            a, b = philox._philox_pairs(lo, hi, *k)
            assert [int(a[0, 0]), int(b[0, 0]), int(a[1, 0]), int(b[1, 0])] == expected


def test_philox_known_answers_native(lib):
    for c, k, expected in KAT:
        out = (np.zeros(4, dtype=np.uint32))
        cc, kk = np.array(c, dtype=np.uint32), np.array(k, dtype=np.uint32)
        lib.es_philox4x32_10_block(cc.ctypes.data, kk.ctypes.data, out.ctypes.data)
        assert out.tolist() == expected


@pytest.mark.parametrize("n", SIZES)
def test_native_matches_torch_bit_for_bit(lib, n):
    key = tensor_seed(12345 + n, 7)
    ref = philox.fill_normal(torch.empty(n), key)
    assert torch.equal(_native(n, key), ref)
    base = torch.randn(n, generator=torch.Generator().manual_seed(n))
    want = philox.axpy_normal(torch.empty(n), base, key, -3e-3)
    assert torch.equal(_native(n, key, base, -3e-3), want)


def test_every_instruction_set_and_thread_count_agrees(lib):
    """The AVX-512, AVX2 and baseline builds (whichever this CPU runs) and any thread count give the same bits."""
    n, key = (1 << 18) + 37, tensor_seed(3, 4)
    ref = philox.fill_normal(torch.empty(n), key)
    for threads in (1, 2, 3):
        assert torch.equal(_native(n, key, threads=threads), ref)
    code = ("import json, torch; from es_hpc.core import native; lib = native.load(); t = torch.empty(%d); "
            "lib.es_axpy_normal(t.data_ptr(), None, %d, %d, 1.0, 0); "
            "print(json.dumps([lib.es_noise_isa().decode(), t.view(torch.int32).tolist()]))" % (n, n, key))
    seen = set()
    for isa in ("avx512", "avx2", "generic"):
        env = dict(os.environ, ES_HPC_NATIVE_ISA=isa)
        got, bits = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                              check=True).stdout)
        if got != isa:
            continue  # this CPU lacks it (or the build does)
        seen.add(isa)
        assert torch.equal(torch.tensor(bits, dtype=torch.int32).view(torch.float32), ref), isa
    assert "generic" in seen


def test_axpy_in_place(lib):
    """out may be base: NoiseSource.axpy(x, x) == x + scale * eps, on both implementations."""
    n = 10_001
    x0 = torch.randn(n, generator=torch.Generator().manual_seed(1))
    want = philox.axpy_normal(torch.empty(n), x0, tensor_seed(5, 2), 0.25)
    for impl in ("native", "torch"):
        src, x = NoiseSource("cpu", implementation=impl), x0.clone()
        src.axpy(x, x, 5, 2, 0.25)
        assert torch.equal(x, want), impl
    assert not torch.equal(want, x0)


def test_draw_and_axpy_are_one_stream():
    """draw returns exactly what axpy adds, in either implementation, and is the same on every call."""
    for impl in ("torch",) + (("native",) if native.load() else ()):
        src = NoiseSource("cpu", implementation=impl)
        eps = src.draw(99, 3, (37, 11))
        assert eps.shape == (37, 11) and eps.dtype == torch.float32
        assert torch.equal(eps, src.draw(99, 3, (37, 11)))
        out = torch.zeros(37, 11)
        src.axpy(out, out, 99, 3, 1.0)
        assert torch.equal(out, eps)
        assert torch.equal(eps.flatten(), philox.fill_normal(torch.empty(37 * 11), tensor_seed(99, 3)))


def test_streams_differ_across_seeds_and_tensors():
    src = NoiseSource("cpu")
    a = src.draw(1, 0, (100_000,))
    for other in (src.draw(2, 0, (100_000,)), src.draw(1, 1, (100_000,))):
        assert not torch.equal(a, other)
        corr = torch.corrcoef(torch.stack([a, other]))[0, 1].item()
        assert abs(corr) < 5 / 100_000 ** 0.5
    # a shorter tensor of the same stream is a prefix: element i depends on i only
    assert torch.equal(src.draw(1, 0, (1001,)), a[:1001])


def test_gaussian_statistics():
    """1e6 draws: mean and variance within 5 standard errors of N(0,1), tails right, KS test passes."""
    n = 1_000_000
    z = NoiseSource("cpu").draw(2024, 0, (n,)).double().numpy()
    assert abs(z.mean()) < 5 / n ** 0.5
    assert abs(z.var() - 1) < 5 * (2 / n) ** 0.5
    tail = np.mean(np.abs(z) > 3)  # 0.0027 for N(0,1)
    assert abs(tail - 0.0026998) < 5 * (0.0027 / n) ** 0.5
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    # the pairs (x, y) of one Box-Muller draw are uncorrelated, and so are neighbours
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / (n / 2) ** 0.5


def test_close_to_exact_box_muller():
    """The float32 polynomials stay within 1e-6 of Box-Muller in float64 on the same Philox words."""
    n, key = 1 << 18, tensor_seed(8, 1)
    z = philox.fill_normal(torch.empty(n), key).double().numpy().reshape(-1, 4)
    c = torch.arange(n // 4, dtype=torch.int64)
    w = [x.numpy() for x in philox.philox4x32_10([c, c * 0, c * 0, c * 0], key & philox.MASK32, key >> 32)]
    u = [((x >> 8) | 1).astype(np.float64) * 2.0 ** -24 for x in w]
    for p in (0, 1):
        r, t = np.sqrt(-2 * np.log(u[2 * p])), 2 * np.pi * u[2 * p + 1]
        assert np.abs(z[:, 2 * p] - r * np.cos(t)).max() < 1e-6
        assert np.abs(z[:, 2 * p + 1] - r * np.sin(t)).max() < 1e-6


def test_implementation_is_recorded_and_env_respected(monkeypatch, tmp_path):
    monkeypatch.setenv("ES_HPC_NOISE", "torch")
    assert NoiseSource("cpu").implementation == "torch"
    monkeypatch.setenv("ES_HPC_NOISE", "auto")
    assert NoiseSource("cpu").implementation == ("native-openmp" if native.load() else "torch")
    monkeypatch.setenv("ES_HPC_NATIVE_DIR", str(tmp_path))  # an empty folder: no library
    with pytest.warns(UserWarning, match="not found.*ES uses the torch noise fallback"):
        assert NoiseSource("cpu").implementation == "torch"
    monkeypatch.setenv("ES_HPC_NOISE", "native")
    with pytest.raises(native.NativeNoiseError, match=r"cmake -S \. -B build && cmake --build build"):
        NoiseSource("cpu")
    monkeypatch.setenv("ES_HPC_NOISE", "bogus")
    with pytest.raises(ValueError, match="ES_HPC_NOISE"):
        NoiseSource("cpu")


def test_axpy_rejects_what_it_cannot_fuse():
    src = NoiseSource("cpu")
    with pytest.raises(TypeError):
        src.axpy(torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), 0, 0, 1.0)
    with pytest.raises(ValueError):
        t = torch.zeros(4, 4)
        src.axpy(t.t(), t.t(), 0, 0, 1.0)


def test_cuda_matches_cpu():
    """native-cuda and the torch fallback on CUDA give the CPU stream's bits."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    impls = ["torch"] + (["native"] if native.load(cuda=True) or REQUIRED else [])
    for n in (1, 5, 257, 100_003, (1 << 20) + 1):
        ref = philox.fill_normal(torch.empty(n), tensor_seed(n, 1))
        base = torch.randn(n, generator=torch.Generator().manual_seed(n))
        want = philox.axpy_normal(torch.empty(n), base, tensor_seed(n, 1), 0.5)
        for impl in impls:
            src = NoiseSource("cuda", implementation=impl)
            assert torch.equal(src.draw(n, 1, (n,)).cpu(), ref), (impl, n)
            out = base.cuda()
            src.axpy(out, out, n, 1, 0.5)
            assert torch.equal(out.cpu(), want), (impl, n)
