"""Two nodes on one machine (tests/infra/slurm_two_nodes.sh: a network namespace, hostname and slurmd per node):
`srun -N 2`, `sbatch -N 2 slurm/es_train.sh` under srun and torchrun, mpirun between the nodes over TCP, each
equal to one process bit for bit; the second node lost mid-run and the run resumed on one node.

Marked `multinode`, so `pytest -m multinode tests/e2e` runs them alone. Without root, network namespace tools or
Slurm the module is skipped, except under CI=true, where that is a failure (as in tests/e2e/test_slurm.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import REPO, final_weights, rewards, run, same_bits
from test_slurm import SBIN, Slurm

pytestmark = pytest.mark.multinode
CLUSTER = REPO / "tests" / "infra" / "slurm_two_nodes.sh"
NODES = ["es-node0", "es-node1"]
SMALL = ["es.population=4", "train.prompts_per_iteration=8", "train.eval_every=0", "train.iterations=3",
         "train.checkpoint_every=1", "train.keep_checkpoints=100"]


@pytest.fixture(scope="module")
def cluster():
    needed = ("sbatch", "scontrol", "slurmctld", "slurmd", "munged", "ip", "nsenter", "unshare", "mpirun")
    missing = [c for c in needed if not shutil.which(c, path=SBIN)]
    why = (f"no {', '.join(missing)}: bash tests/infra/slurm_cluster.sh install, tests/infra/install_mpi.sh"
           if missing else "" if os.geteuid() == 0 else "network namespaces need root")
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: CI must provide them)")
        pytest.skip(why)
    env = dict(os.environ, PATH=SBIN, PYTHONUNBUFFERED="1",
               SLURM_CONF=os.environ.get("SLURM_TWO_NODES_DIR", "/tmp/es_hpc-slurm2") + "/slurm.conf")
    start = subprocess.run(["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=180)
    if start.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, timeout=120)
        pytest.fail(f"slurm_two_nodes.sh start exited {start.returncode}:\n{start.stdout}{start.stderr}")
    yield Slurm(env)
    subprocess.run(["bash", str(CLUSTER), "stop"], env=env, timeout=120)


def train_args(model: Path, out: Path, sets: list[str] = ()) -> list[str]:
    """`-m es_hpc train` of the tiny model with SMALL and then `sets`."""
    return ["-m", "es_hpc", "train", "--config", "configs/tiny.yaml", "--out", str(out), "--set", f"model.path={model}",
            *[x for s in [*SMALL, *sets] for x in ("--set", s)]]


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, tmp_path_factory):
    """The reference: the same run in one process."""
    out = tmp_path_factory.mktemp("one") / "run"
    run(train_args(tiny_model_dir, out))
    return out


def test_two_idle_nodes_each_with_its_name(cluster):
    assert cluster.cmd("sinfo", "-h", "-N", "-o", "%N %T").split() == ["es-node0", "idle", "es-node1", "idle"]
    assert sorted(cluster.cmd("srun", "-N", "2", "hostname").split()) == NODES


def check_nodes(run_dir: Path, per_node: int, world: int) -> None:
    """The log names both nodes and each rank's node: `per_node` ranks on each."""
    with h5py.File(run_dir / "es_log.h5", "r") as f:
        assert f.attrs["world_size"] == world
        ranks = f.attrs["rank_nodes"].split(",")
        assert sorted(f.attrs["nodes"].split(",")) == NODES
    assert sorted(ranks) == sorted(NODES * per_node), ranks


def banner(world: int, per_node: int) -> str:
    """The start-up line's scale: a node's cores (no task binding here: all of this machine's) shared by its ranks."""
    return f"es_hpc train: {world} rank(s) x {max(1, len(os.sched_getaffinity(0)) // per_node)} thread(s)"


def assert_same_run(run_dir: Path, reference: Path) -> None:
    assert np.array_equal(rewards(run_dir), rewards(reference))
    assert same_bits(final_weights(run_dir), final_weights(reference))


@pytest.mark.parametrize("per_node", [1, 2])
@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
def test_sbatch_two_nodes_equals_one_process(cluster, tiny_model_dir, one_process, tmp_path, launcher, per_node):
    """`sbatch -N 2 slurm/es_train.sh`: the rendezvous on the first node's address, ranks on both nodes, the same
    rewards and weights as one process."""
    job, run_dir, output = cluster.submit(tmp_path, tiny_model_dir, [], env=f",LAUNCHER={launcher}", fast=SMALL,
                                          nodes=2, per_node=per_node)
    info = cluster.wait(job, output)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{text[-3000:]}"
    assert f"on es-node[0-1]: {2 * per_node} ranks, launcher {launcher}" in text, text[-3000:]
    assert banner(2 * per_node, per_node) in text, text[-3000:]
    check_nodes(run_dir, per_node, 2 * per_node)
    assert_same_run(run_dir, one_process)


@pytest.mark.parametrize("per_node", [1, 2])
def test_mpirun_two_nodes_equals_one_process(cluster, tiny_model_dir, one_process, tmp_path, per_node):
    """mpirun from the first node, a hostfile naming both, Open MPI's TCP transport between them (the rsh agent
    enters the other node's namespaces, as ssh would log in)."""
    hostfile = tmp_path / "hosts"
    hostfile.write_text("".join(f"{node} slots={per_node}\n" for node in NODES))
    out = tmp_path / "run"
    agent = f"bash {CLUSTER} on"
    # --bind-to none: the threads are es_hpc's split of the node's cores among the ranks MPI reports on it
    cmd = ["mpirun", "--allow-run-as-root", "-n", str(2 * per_node), "--hostfile", str(hostfile), "--bind-to", "none",
           "--mca", "plm_rsh_agent", f"'{agent}'", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include",
           "eth0", "-x", "PYTHONUNBUFFERED", sys.executable, *train_args(tiny_model_dir, out, ["dist.backend=mpi"])]
    proc = subprocess.run(["bash", str(CLUSTER), "on", NODES[0], *cmd], cwd=REPO, env=cluster.env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert banner(2 * per_node, per_node) in proc.stdout, proc.stdout[-3000:]
    check_nodes(out, per_node, 2 * per_node)
    assert_same_run(out, one_process)


def test_usr1_reaches_both_nodes_and_the_requeued_attempt_appends(cluster, tiny_model_dir, tmp_path):
    """The time-limit warning: every rank on both nodes stops at the same iteration with one checkpoint, the job
    requeues onto both nodes again and the attempt appends to the same log."""
    iterations = 40  # a second an iteration or so: the signal lands mid-run
    job, run_dir, output = cluster.submit(tmp_path, tiny_model_dir, [f"train.iterations={iterations}",
                                                                     "train.checkpoint_every=0"],
                                          fast=SMALL, nodes=2, per_node=1)
    cluster.wait(job, output, until=lambda info: output.exists() and "es_hpc train: 2 rank(s)" in output.read_text())
    cluster.cmd("scancel", "--batch", "--signal=USR1", str(job))
    info = cluster.wait(job, output)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", f"{info}\n{text[-3000:]}"
    assert text.count("requeueing (restart 1 of 3)") == 1 and text.count("on es-node[0-1]: 2 ranks") == 2, text
    with h5py.File(run_dir / "es_log.h5", "r") as f:
        stopped = int(f.attrs["resumed_at"][0])
        assert 1 <= stopped < iterations and f["train/iteration"][:].tolist() == list(range(iterations))
    # checkpoint_every=0: the one the warning made, and the final one
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("iter_*")) == [f"iter_{stopped:06d}",
                                                                               f"iter_{iterations:06d}"]


CHECKPOINT_JOBS = {
    "probe": ["probe.sigmas=[1e-3, 1e-2]", "probe.batches=1", "probe.candidates=4", "probe.pool_size=16"],
    "clss": ["clss.populations=[2, 4]", "clss.trajectories=2", "clss.steps=2", "clss.prompts_per_step=8"],
    "slq": ["slq.probes=2", "slq.steps=3", "slq.prompts=4"],
}


@pytest.mark.parametrize("sub", CHECKPOINT_JOBS)
def test_checkpoint_jobs_across_both_nodes(cluster, tiny_model_dir, tmp_path, sub):
    """`sbatch -N 2 slurm/es_job.sh probe|clss|slq`: one rank per node; the file names both nodes."""
    checkpoint = () if sub == "probe" else (str(tiny_model_dir),)
    job, run_dir, output = cluster.submit(tmp_path, tiny_model_dir, [], fast=CHECKPOINT_JOBS[sub], nodes=2,
                                          per_node=1,
                                          script=("slurm/es_job.sh", sub, f"configs/tiny_{sub}.yaml", *checkpoint))
    info = cluster.wait(job, output)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{text[-3000:]}"
    assert f"es_{sub}: job {job} attempt 0 on es-node[0-1]: 2 ranks" in text, text[-3000:]
    with h5py.File(run_dir / f"{sub}.h5", "r") as f:
        assert f.attrs["world_size"] == 2 and sorted(f.attrs["rank_nodes"].split(",")) == NODES


LOSS_ITERATIONS = 12


def test_a_lost_node_ends_the_job_and_one_node_resumes_it(cluster, tiny_model_dir, tmp_path):
    """kill -9 of everything on the second node (its slurmd too): the job ends within 90 s, non-zero, naming the
    node; the log keeps its rows; resubmitted on the first node alone, the run continues as an unbroken one."""
    sets = [f"train.iterations={LOSS_ITERATIONS}"]
    reference = tmp_path / "unbroken"
    run(train_args(tiny_model_dir, reference, sets))
    no_requeue = Slurm(dict(cluster.env, SBATCH_NO_REQUEUE="1"))  # the resubmission below is the continuation
    job, run_dir, output = no_requeue.submit(tmp_path, tiny_model_dir, sets, fast=SMALL, nodes=2, per_node=1)
    try:
        no_requeue.wait(job, output, until=lambda info: output.exists() and "iter      3/" in output.read_text())
        lost = subprocess.run(["bash", str(CLUSTER), "pids", NODES[1]], capture_output=True, text=True,
                              check=True).stdout.split()
        t0 = time.monotonic()
        subprocess.run(["kill", "-9", *lost], check=True)
        info = no_requeue.wait(job, output)
        took = time.monotonic() - t0
        text = output.read_text()
        assert info["JobState"] in ("NODE_FAIL", "FAILED") and info["ExitCode"] != "0:0", f"{info}\n{text[-3000:]}"
        assert took < 90 and f"Node failure on {NODES[1]}" in text, f"{took:.0f} s\n{text[-3000:]}"
        lost_line = f"error: rank 0 on {NODES[0]}: lost the connection to {NODES[1]} ("
        assert lost_line in text and "Traceback" not in text, text[-3000:]
        with h5py.File(run_dir / "es_log.h5", "r") as f:
            kept = f["train/iteration"][:].tolist()
        assert 3 <= len(kept) < LOSS_ITERATIONS and kept == list(range(len(kept)))
        job, run_dir, output = no_requeue.submit(tmp_path, tiny_model_dir, sets, fast=SMALL, nodes=1, per_node=1)
        info = no_requeue.wait(job, output)
        text = output.read_text()
        assert info["JobState"] == "COMPLETED" and "--resume" in text and "resumed from" in text, text[-3000:]
    finally:  # the second node back for whatever runs next
        subprocess.run(["bash", str(CLUSTER), "start"], env=cluster.env, capture_output=True, timeout=180)
    with h5py.File(run_dir / "es_log.h5", "r") as f:
        assert f.attrs["resumed_at"][0] >= 1 and f["train/iteration"][:].tolist() == list(range(LOSS_ITERATIONS))
    assert_same_run(run_dir, reference)
