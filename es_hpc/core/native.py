"""ctypes loader of the native Philox noise kernels (native/, built by CMake into es_hpc/_native/).

No torch C++ extension: the libraries take raw pointers, so they build with any compiler and load in any torch.
ES_HPC_NATIVE_DIR overrides where they are looked for; ES_HPC_NOISE=torch ignores them (the torch fallback), and
ES_HPC_NOISE=native makes a missing library an error instead of a fallback with a warning.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys
import warnings
from pathlib import Path

import torch  # noqa: F401  (first, so the library shares torch's OpenMP runtime: libgomp.so.1 is loaded once)

from .philox import STREAM_VERSION

CPU_LIB, CUDA_LIB = "es_philox_noise", "es_philox_noise_cuda"
BUILD_HINT = "run `cmake -S . -B build && cmake --build build` in the repository root"


class NativeNoiseError(RuntimeError):
    """A native noise library was required (ES_HPC_NOISE=native) but is missing or unusable."""


def mode() -> str:
    """ES_HPC_NOISE: 'auto' (native where built, else torch), 'native' (required) or 'torch' (forced fallback)."""
    value = os.environ.get("ES_HPC_NOISE", "auto").strip().lower() or "auto"
    if value not in ("auto", "native", "torch"):
        raise ValueError(f"ES_HPC_NOISE={value!r}: expected auto, native or torch")
    return value


def native_dir() -> Path:
    """Where the libraries are looked for: $ES_HPC_NATIVE_DIR, else es_hpc/_native next to this package."""
    return Path(os.environ.get("ES_HPC_NATIVE_DIR") or Path(__file__).resolve().parent.parent / "_native")


def _path(name: str) -> Path:
    suffix = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")
    return native_dir() / (("" if sys.platform == "win32" else "lib") + name + suffix)


@functools.lru_cache(maxsize=None)
def _load(name: str, where: str) -> ctypes.CDLL | str:
    """The library `name` under directory `where`, or the reason it cannot be used (cached per directory)."""
    path = _path(name)
    if not path.exists():
        return f"{path} not found"
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as err:
        return f"{path}: {err}"
    f, i64, u64, vp = ctypes.c_float, ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p
    if name == CPU_LIB:
        version = lib.es_noise_stream_version()
        lib.es_axpy_normal.argtypes = [vp, vp, i64, u64, f, ctypes.c_int]
        lib.es_axpy_normal.restype = None
        lib.es_noise_isa.restype = ctypes.c_char_p
        lib.es_philox4x32_10_block.argtypes = [vp, vp, vp]
        lib.es_philox4x32_10_block.restype = None
    else:
        version = lib.es_noise_cuda_stream_version()
        lib.es_axpy_normal_cuda.argtypes = [vp, vp, i64, u64, f, ctypes.c_int, vp]
        lib.es_axpy_normal_cuda.restype = ctypes.c_int
        lib.es_cuda_probe.argtypes = [ctypes.c_int]
        lib.es_cuda_probe.restype = ctypes.c_int
        lib.es_cuda_error_string.argtypes = [ctypes.c_int]
        lib.es_cuda_error_string.restype = ctypes.c_char_p
    if version != STREAM_VERSION:
        return f"{path} has stream version {version}, this code {STREAM_VERSION} (stale build)"
    return lib


def load(cuda: bool = False, required: bool = False) -> ctypes.CDLL | None:
    """The CPU (or CUDA) noise library whatever ES_HPC_NOISE says; None when not built, unless `required`."""
    lib = _load(CUDA_LIB if cuda else CPU_LIB, str(native_dir()))
    if isinstance(lib, str):
        if required:
            raise NativeNoiseError(f"native noise library unusable ({lib}): {BUILD_HINT}")
        return None
    return lib


def library(cuda: bool = False) -> ctypes.CDLL | None:
    """The library ES_HPC_NOISE asks for: None when not built (auto) or when it says torch.

    Raises NativeNoiseError when ES_HPC_NOISE=native and the library is unusable."""
    want = mode()
    if want == "torch":
        return None
    try:
        lib = load(cuda, required=want == "native")
    except NativeNoiseError as err:
        raise NativeNoiseError(f"ES_HPC_NOISE=native: {err}") from None
    if lib is None:
        _warn_fallback(why_missing(cuda))
    return lib


@functools.lru_cache(maxsize=None)
def _warn_fallback(reason: str) -> None:
    """Say once per reason that auto mode falls back to the torch noise: the same numbers, many times slower."""
    warnings.warn(f"native noise library unusable ({reason}); ES uses the torch noise fallback, many times slower: "
                  f"{BUILD_HINT} (or reinstall with `pip install .`)", stacklevel=4)


def why_missing(cuda: bool = False) -> str | None:
    """Why load(cuda) gives None (for test skips), or None when the library loads."""
    lib = _load(CUDA_LIB if cuda else CPU_LIB, str(native_dir()))
    return lib if isinstance(lib, str) else None
