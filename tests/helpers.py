"""Run the real CLI in subprocesses and read what it wrote."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
# A few seconds per run: small population and prompt batch, frequent evaluation and checkpoints.
FAST = ["es.population=4", "train.prompts_per_iteration=8", "train.eval_prompts=32", "train.eval_every=1",
        "train.checkpoint_every=1", "train.drift_every=1", "train.iterations=2", "train.keep_checkpoints=100"]
DEADLINE = 1200  # seconds a run, or a wait for its output, may take: only a hang should ever reach it


def train_cmd(model_dir: Path, out: Path, sets: list[str] = (), resume: bool = False) -> list[str]:
    cmd = ["-m", "es_hpc", "train", "--config", str(TINY_CONFIG), "--out", str(out), "--set", f"model.path={model_dir}"]
    for s in [*FAST, *sets]:
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume else [])


def run(args: list[str], launcher: list[str] | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run `python ARGS` (or LAUNCHER ARGS) in the repo; fail with its output on a non-zero exit when check."""
    cmd = (launcher or [sys.executable]) + args
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=DEADLINE, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def start(args: list[str], log: Path, launcher: list[str] | None = None, **kw) -> subprocess.Popen:
    """Start `python ARGS` (or LAUNCHER ARGS) in the background, stdout and stderr into `log`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **kw.pop("env", {}))
    with open(log, "w") as out:
        return subprocess.Popen((launcher or [sys.executable]) + args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=env, **kw)


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = DEADLINE) -> None:
    """Block until `text` appears in the log; fail if the process ends first or time runs out."""
    deadline = time.time() + timeout
    while text not in log.read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"{text!r} never appeared (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def kill_at(log: Path, text: str, proc: subprocess.Popen) -> None:
    """SIGKILL the process once `text` is in its log (a crash at that point); fail if it had already ended."""
    wait_for(log, text, proc)
    proc.kill()
    proc.wait(timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL, f"it ended before it could be killed:\n{log.read_text()[-3000:]}"



def rewards(run_dir: Path) -> np.ndarray:
    with h5py.File(run_dir / "es_log.h5", "r") as f:
        return f["train/rewards"][:]


def final_weights(run_dir: Path) -> dict[str, np.ndarray]:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run_dir / "checkpoints" / latest / "model.safetensors"))


def same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
