"""End to end on a real one-node Slurm cluster: `sbatch slurm/es_train.sh` with 2 ranks (srun and torchrun
launchers), the time-limit warning: USR1, checkpoint, requeue, resume; and `sbatch slurm/es_job.sh probe`.
slurm/es_job.sh's argument checks and its refusal to rerun a requeued clss/slq attempt need no cluster.

The cluster is started by tests/infra/slurm_cluster.sh (CI installs Slurm with its `install` subcommand). Without
Slurm the module is skipped, except under CI=true, where a missing Slurm is a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import FAST, REPO

CLUSTER = REPO / "tests" / "infra" / "slurm_cluster.sh"
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
JOB_TIMEOUT = 300  # seconds for one job, requeue included


class Slurm:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def cmd(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def submit(self, tmp: Path, model: Path, sets: list[str], env: str = "",
               script: tuple[str, ...] = ("slurm/es_train.sh", "configs/tiny.yaml"),
               fast: list[str] = FAST, nodes: int = 1, per_node: int = 2) -> tuple[int, Path, Path]:
        """sbatch a script (the train script) with `per_node` ranks on each of `nodes` nodes (2 on the one node);
        the run and the job's output go under tmp."""
        run, out = tmp / "run", tmp / "slurm-%j.out"
        args = ["sbatch", "--parsable", f"--nodes={nodes}", f"--ntasks-per-node={per_node}", "--cpus-per-task=1",
                "--time=10",
                f"--output={out}", f"--export=ALL,RUN={run},PYTHON={sys.executable}{env}",
                *script, "--set", f"model.path={model}"]
        for s in [*fast, *sets]:
            args += ["--set", s]
        job = int(self.cmd(*args).strip().split(";")[0])
        return job, run, tmp / f"slurm-{job}.out"

    def job(self, job: int) -> dict[str, str]:
        """scontrol's fields of a job (there is no accounting database, so no sacct; MinJobAge keeps it 10 min)."""
        line = self.cmd("scontrol", "show", "job", "-o", str(job))
        return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)

    def wait(self, job: int, output: Path, until=lambda info: False) -> dict[str, str]:
        """Poll until the job ends (or `until(info)` holds); fail with the job's output on a timeout."""
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline:
            info = self.job(job)
            if until(info) or info["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                                                    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"):
                return info
            time.sleep(0.5)
        self.cmd("scancel", str(job), check=False)
        log = output.read_text() if output.exists() else "(no output file)"
        raise AssertionError(f"job {job} not done after {JOB_TIMEOUT}s: {info}\n{log[-3000:]}")


@pytest.fixture(scope="module")
def slurm():
    missing = [c for c in ("sbatch", "scontrol", "slurmctld", "slurmd", "munged") if not shutil.which(c, path=SBIN)]
    if missing:
        why = f"Slurm is not installed (no {', '.join(missing)}): bash tests/infra/slurm_cluster.sh install"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: CI must install it)")
        pytest.skip(why)
    env = dict(os.environ, PATH=SBIN, SLURM_CONF=os.environ.get("SLURM_TEST_DIR", "/tmp/es_hpc-slurm") + "/slurm.conf",
               PYTHONUNBUFFERED="1")
    start = subprocess.run(["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=180)
    if start.returncode != 0:
        pytest.fail(f"slurm_cluster.sh start exited {start.returncode}:\n{start.stdout}{start.stderr}")
    ours = "already running" not in start.stderr  # a developer's running cluster is left running
    yield Slurm(env)
    if ours:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, timeout=120)


def check_log(run: Path, iterations: int) -> h5py.File:
    f = h5py.File(run / "es_log.h5", "r")
    assert f.attrs["world_size"] == 2 and f.attrs["comm"] == "torch"
    assert f["train/rewards"].shape == (iterations, 4) and f["train/rewards"].dtype == np.float32
    assert f["train/iteration"][:].tolist() == list(range(iterations))
    assert f["train/baseline_drift"][:].tolist() == [0.0] * iterations
    return f


@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
def test_sbatch_two_ranks(slurm, tiny_model_dir, tmp_path, launcher):
    job, run, output = slurm.submit(tmp_path, tiny_model_dir, [], env=f",LAUNCHER={launcher}")
    info = slurm.wait(job, output)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{text[-3000:]}"
    assert f"launcher {launcher}" in text and "es_hpc train: 2 rank(s)" in text and '"summary"' in text
    with check_log(run, 2) as f:
        assert "resumed_at" not in f.attrs
    assert (run / "checkpoints" / "latest").read_text().strip() == "iter_000002"


ITERATIONS = 40


def test_usr1_checkpoints_requeues_and_resumes(slurm, tiny_model_dir, tmp_path):
    """The time-limit warning (--signal=B:USR1) by hand: the ranks checkpoint, the job requeues, resumes, completes."""
    # Enough iterations (a tenth of a second each) that the signal, sent once the ranks started, lands mid-run.
    job, run, output = slurm.submit(tmp_path, tiny_model_dir, [f"train.iterations={ITERATIONS}",
                                                               "train.checkpoint_every=0"])
    slurm.wait(job, output, until=lambda info: output.exists() and "es_hpc train: 2 rank(s)" in output.read_text())
    slurm.cmd("scancel", "--batch", "--signal=USR1", str(job))
    info = slurm.wait(job, output)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{text[-3000:]}"
    assert info["Restarts"] == "1" and "requeueing (restart 1 of 3)" in text, text[-3000:]
    assert "--resume" in text and "resumed from" in text
    with check_log(run, ITERATIONS) as f:
        assert 1 <= f.attrs["resumed_at"][0] < ITERATIONS


PROBE = ["probe.sigmas=[1e-3, 1e-2]", "probe.batches=1", "probe.candidates=4", "probe.pool_size=16"]


def test_sbatch_probe_job(slurm, tiny_model_dir, tmp_path):
    """`sbatch slurm/es_job.sh probe CONFIG`: 2 ranks under srun write the probe file into RUN."""
    job, run, output = slurm.submit(tmp_path, tiny_model_dir, [], fast=PROBE,
                                    script=("slurm/es_job.sh", "probe", "configs/tiny_probe.yaml"))
    info = slurm.wait(job, output)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{text[-3000:]}"
    assert f"es_probe: job {job} attempt 0 on " in text and f"2 ranks, run {run}" in text, text[-3000:]
    summary = json.loads(next(line for line in text.splitlines() if line.startswith('{"summary"')))["summary"]
    assert summary["evaluated"] == 2 * 4 and summary["skipped"] == 0, summary
    assert "terminate called" not in text, text[-3000:]
    with h5py.File(run / "probe.h5", "r") as f:
        assert f.attrs["world_size"] == 2 and f.attrs["comm"] == "torch"
        assert f["probe/sigma1/batch0/reward"].shape == (4,)


JOB_SCRIPT = REPO / "slurm" / "es_job.sh"


@pytest.mark.parametrize("args", [[], ["train", "configs/tiny.yaml"], ["probe"], ["clss", "configs/tiny_clss.yaml"],
                                  ["slq"]])
def test_job_script_usage(tmp_path, args):
    """An unknown subcommand, or one without its CONFIG (and CHECKPOINT): one usage line, exit 2, no run."""
    env = dict(os.environ, SLURM_JOB_ID="7", RUN=str(tmp_path / "run"))
    proc = subprocess.run(["bash", str(JOB_SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert proc.stderr.startswith("usage: sbatch slurm/es_job.sh {probe CONFIG | clss CONFIG CHECKPOINT | slq")
    assert len(proc.stderr.splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("sub", ["clss", "slq"])
def test_job_script_stops_a_requeued_clss_or_slq(tmp_path, sub):
    """A requeued clss/slq attempt would not resume: it stops before srun, with exit 1 and the reason."""
    env = dict(os.environ, SLURM_JOB_ID="7", SLURM_RESTART_COUNT="1", RUN=str(tmp_path / "run"),
               PATH=str(tmp_path))  # no srun, no python here: neither may run
    proc = subprocess.run(["/bin/bash", str(JOB_SCRIPT), sub, "configs/x.yaml", "ckpt"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc
    assert f"es_{sub}: job 7 attempt 1 is a requeue" in proc.stderr and "--no-requeue" in proc.stderr, proc
    assert not (tmp_path / "run").exists()
