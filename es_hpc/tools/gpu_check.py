"""The GPU path in one run (launch/gpu_check.sh): the CUDA noise kernel, train and bench with both backends on a
~0.5B random Qwen2, and the batched-population speed-up, summed up in one table.

It runs the project from its source tree with whatever torch and transformers the machine has, installs nothing,
and uses the CLI for every job, as a user would. `--smoke` runs the same steps on the CPU at small sizes, so that
the script itself is tested where no GPU is (tests/e2e/test_gpu_check.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from ..core import philox
from ..core.noise import NoiseSource
from ..core.seeds import tensor_seed
from ..errors import first_line

SIZES = {"gpu": dict(hidden=1024, layers=30), "smoke": dict(hidden=64, layers=2)}  # 1024 x 30: 0.50B parameters
TRAIN = ["train.iterations=3", "train.eval_every=3", "train.eval_prompts=64", "train.keep_best=false",
         "train.checkpoint_every=0"]
SMOKE = ["es.population=4", "train.prompts_per_iteration=8", "train.eval_prompts=8"]
NO_GPU = ("gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); run it on a machine with an "
          "NVIDIA GPU, or pass --smoke to test the script on the CPU")


def cli(args: list[str], timeout: float) -> str:
    """`python -m es_hpc ARGS` from this source tree; its stdout, or RuntimeError with the last line of stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "es_hpc", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {last}")
    return proc.stdout


def sets(values: list[str]) -> list[str]:
    return [x for v in values for x in ("--set", v)]


def kernel(device: str) -> str:
    """The native kernel and the torch fallback on `device` against the CPU stream, bit for bit (draw and axpy)."""
    impls = ["torch", "native"]
    for n in (1, 5, 257, 100_003, (1 << 20) + 1):
        ref = philox.fill_normal(torch.empty(n), tensor_seed(n, 1))
        base = torch.randn(n, generator=torch.Generator().manual_seed(n))
        want = philox.axpy_normal(torch.empty(n), base, tensor_seed(n, 1), 0.5)
        for impl in impls:
            src = NoiseSource(device, implementation=impl)
            out = base.clone().to(device)
            src.axpy(out, out, n, 1, 0.5)
            if not (torch.equal(src.draw(n, 1, (n,)).cpu(), ref) and torch.equal(out.cpu(), want)):
                raise AssertionError(f"{impl} on {device} differs from the CPU stream at n={n}")
    return f"bit-equal to the CPU stream: {' and '.join(impls)} on {device}, 5 sizes up to 2^20 + 1"


def train(out: Path, model: Path, backend: str, dtype: str, extra: list[str], timeout: float) -> dict:
    """A 3-iteration train run: seconds per iteration, rewards, drift and the held-out reward."""
    run = out / f"train_{backend}_{dtype}"
    cli(["train", "--config", "tiny", "--out", str(run), *sets([f"model.path={model}", f"model.dtype={dtype}",
                                                               f"generation.backend={backend}", *TRAIN, *extra])],
        timeout)
    with h5py.File(run / "es_log.h5", "r") as f:
        wall = f["train/wall"][()]
        return {"rewards": f["train/rewards"][()].astype(float).round(4).tolist(),
                "seconds_per_iteration": float(np.diff(np.concatenate([[0.0], wall]))[1:].mean()),
                "max_abs_drift": float(np.nanmax(np.abs(f["train/baseline_drift"][()]))),
                "eval_reward": float(f["eval/reward"][-1])}


BENCH = ("overhead_ratio", "iteration_seconds", "inference_seconds", "peak_memory_inference_bytes",
         "peak_memory_es_bytes", "peak_memory_ratio", "speedup_batched", "members_per_call_batched")
SWITCH = ("switch_seconds_per_member", "switch_es_hpc_seconds_per_member", "switch_platform_seconds_per_member",
          "reload_path_seconds_per_member", "switch_ratio")  # a member's weight switch inside the engine


def bench(model: Path, backend: str, dtype: str, extra: list[str], timeout: float, keys=BENCH) -> dict:
    """`bench --json` on `model`: the iteration against generation alone, and device memory of ES vs inference."""
    report = json.loads(cli(["bench", "--config", "tiny", "--json", *sets(
        [f"model.path={model}", f"model.dtype={dtype}", f"generation.backend={backend}", *extra])], timeout))
    return {k: report.get(k) for k in keys}


def steps(out: Path, smoke: bool) -> list[tuple[str, callable]]:
    """(row name, zero-argument check) in the order they run; each returns its result (text or a dict)."""
    device, dtype = ("cpu", "float32") if smoke else ("cuda", "bfloat16")
    extra, timeout = (SMOKE, 600) if smoke else ([], 240)
    model = out / "random_qwen2"
    vllm = importlib.util.find_spec("vllm") is not None

    def build() -> str:
        size = SIZES["smoke" if smoke else "gpu"]
        facts = json.loads(cli(["make-random-model", "--out", str(model),
                                *[f"--{k}={v}" for k, v in size.items()]], timeout))
        return f"{facts['parameters'] / 1e6:,.1f}M parameters (hidden {facts['hidden']}, {facts['layers']} layers)"

    def parity() -> str:
        """float32 rewards of the two backends, equal element for element."""
        a = train(out, model, "transformers", "float32", extra, timeout)["rewards"]
        b = train(out, model, "vllm", "float32", extra, timeout)["rewards"]
        if a != b:
            raise AssertionError(f"float32 rewards differ: transformers {a}, vllm {b}")
        return f"equal rewards in float32 ({len(a)} iterations)"

    rows = [(f"noise kernel ({device})", lambda: kernel(device)), ("random Qwen2 built", build),
            (f"train transformers {dtype}", lambda: train(out, model, "transformers", dtype, extra, timeout))]
    rows += [(f"train vllm {dtype}", lambda: train(out, model, "vllm", dtype, extra, timeout)),
             ("vllm vs transformers float32", parity)] if vllm else \
        [(f"train vllm {dtype}", lambda: "not installed"), ("vllm vs transformers float32", lambda: "not installed")]
    rows += [("bench transformers", lambda: bench(model, "transformers", dtype, extra, timeout)),
             ("bench vllm", (lambda: bench(model, "vllm", dtype, extra, timeout, BENCH + SWITCH)) if vllm
              else lambda: "not installed"),
             ("batched speed-up, tiny model N=30 P=64",
              lambda: bench(Path("embedded:tiny"), "transformers", "float32", extra, timeout, BENCH[-2:]))]
    return rows


def table(results: list[tuple[str, object, float]]) -> str:
    """One row per check: its name, seconds and result (dicts as key=value)."""
    def text(value) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        return str(value)
    width = max(len(name) for name, _, _ in results)
    lines = [f"{'check':<{width}}  {'s':>6}  result", "-" * (width + 40)]
    lines += [f"{name:<{width}}  {secs:6.1f}  {text(value)}" for name, value, secs in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m es_hpc.tools.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="directory for the model, the runs and summary.json")
    p.add_argument("--smoke", action="store_true", help="the same steps on the CPU at small sizes (tests the script)")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results, failed = [], 0
    for name, check in steps(args.out, args.smoke):
        t0 = time.perf_counter()
        try:
            value = check()
        except (RuntimeError, AssertionError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
            value, failed = f"FAILED: {first_line(exc)}", failed + 1
        results.append((name, value, time.perf_counter() - t0))
        print(f"gpu_check: {name}: {'FAILED' if str(value).startswith('FAILED') else 'done'}", file=sys.stderr,
              flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.smoke else "cpu (smoke)"
    print(f"gpu_check on {device}, torch {torch.__version__}")
    print(table(results))
    (args.out / "summary.json").write_text(json.dumps({name: value for name, value, _ in results}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
