"""launch/gpu_check.sh where no GPU is: one line and exit status 2; and its every step, run on the CPU at small
sizes (--smoke), so that the script a GPU machine runs once has run here end to end."""
import importlib.util
import json
import os
import subprocess
import sys

from helpers import REPO, run


def test_stops_with_one_line_without_a_gpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(["bash", "launch/gpu_check.sh", str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); run it on a machine with one"]


def test_every_step_runs_on_the_cpu(tmp_path):
    proc = run(["-m", "es_hpc.tools.gpu_check", "--smoke", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not [k for k, v in summary.items() if str(v).startswith("FAILED")], summary
    assert summary["noise kernel (cpu)"].startswith("bit-equal to the CPU stream")
    hf = summary["train transformers float32"]
    assert len(hf["rewards"]) == 3 and hf["max_abs_drift"] == 0
    assert summary["batched speed-up, tiny model N=30 P=64"]["members_per_call_batched"] > 1
    vllm = importlib.util.find_spec("vllm") is not None
    assert (summary["bench vllm"] == "not installed") is not vllm
    assert "gpu_check on cpu (smoke)" in proc.stdout and "batched speed-up" in proc.stdout
