"""The README's main command, shortened: venv reuse, the embedded model, 2 torchrun ranks, curve and summary."""
import os
import subprocess
import sys

import h5py

from helpers import REPO


def test_quickstart_script(tmp_path):
    env = dict(os.environ, VENV=sys.prefix, RUN=str(tmp_path / "qs"))
    proc = subprocess.run(
        ["bash", "launch/quickstart.sh", "--set", "train.iterations=2", "--set", "es.population=4",
         "--set", "train.prompts_per_iteration=8", "--set", "train.eval_prompts=32", "--set", "train.eval_every=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 rank(s)" in proc.stdout and "iterations on 2 rank(s)" in proc.stdout
    assert (tmp_path / "qs" / "reward_curve.png").stat().st_size > 10_000
    with h5py.File(tmp_path / "qs" / "es_log.h5", "r") as f:
        assert f.attrs["world_size"] == 2 and f["train/rewards"].shape == (2, 4)
        assert f.attrs["model"] == "embedded:tiny"
