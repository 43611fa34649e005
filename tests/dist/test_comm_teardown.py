"""The torch communicator's teardown on 2 ranks: whatever way a rank leaves (close(), no close at all, an exception
raised inside a collective because its peer died), the group's threads are gone before interpreter finalization,
so the process exits with its own code, other libraries' atexit handlers run, and nothing aborts ("terminate
called without an active exception", which a gloo worker still holding a collective's tensor during finalization
produces). Launched by torchrun and as srun starts tasks (SLURM_* variables only), each case several times: the
abort was a race, so one clean run proves little; the thread check at exit is the deterministic part."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

REPEAT = 3

# Registers its atexit handler before the communicator exists, so it runs after the communicator's (LIFO): by then
# the backend threads must be gone. MODE: close (as the jobs do), model-import (close, after importing what loading
# a model imports, as the jobs do after joining: transformers pulls in torch.distributed.nn.functional), no-close,
# peer-dies (rank 1 vanishes after the first collective; rank 0's next one raises, uncaught).
SCRIPT = r'''
import atexit, os, sys
import numpy as np
from es_hpc import comm

def backend_threads():
    try:
        names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    except OSError:
        return "unknown"
    return ",".join(sorted(n for n in names if n in BACKEND_THREADS)) or "none"

BACKEND_THREADS = ("pt_gloo_runloop", "gloo_tcp_loop", "pt_tcpstore_uv")  # gloo's workers and loop, the store
mode = sys.argv[1]
atexit.register(lambda: print(f"ATEXIT-MARKER rank {c.rank} backend threads: {backend_threads()}", flush=True))
c = comm.make("torch")
if mode == "model-import":
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401
assert c.name == "torch" and c.world_size == 2
assert c.allreduce_sum(np.array([1.0, c.rank])).tolist() == [2.0, 1.0]
if mode == "peer-dies":
    if c.rank == 1:
        os._exit(3)  # no cleanup at all, as a killed rank
    c.allreduce_sum(np.ones(2))  # raises: the peer is gone
c.barrier()
if mode in ("close", "model-import"):
    c.close()
    assert not c.group_alive(), "the group outlived close()"
print(f"rank {c.rank} done", flush=True)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return dict(env, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def run_torchrun(script: Path, mode: str) -> list[tuple[int, str, str]]:
    """One torchrun of 2 ranks: its exit status and the ranks' output (torchrun passes it through)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), mode]
    proc = subprocess.run(cmd, cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=120)
    return [(proc.returncode, proc.stdout, proc.stderr)]


def run_srun_like(script: Path, mode: str) -> list[tuple[int, str, str]]:
    """2 processes with only the variables srun gives a task of a one-node, 2-task step (no RANK/WORLD_SIZE):
    the communicator derives torchrun's from them; MASTER_ADDR/PORT are set as a batch script may."""
    port = free_port()
    procs = []
    for rank in range(2):
        env = dict(base_env(), SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NODEID="0",
                   SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2", SLURM_STEP_TASKS_PER_NODE="2",
                   SLURM_STEP_NODELIST="localhost", SLURM_JOB_ID="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(script), mode], cwd=REPO, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        out.append((proc.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("mode, repeat", [("close", REPEAT), ("no-close", REPEAT), ("model-import", 1)])
@pytest.mark.parametrize("launch", [run_torchrun, run_srun_like], ids=["torchrun", "srun"])
def test_ranks_exit_cleanly_and_atexit_handlers_run(tmp_path, launch, mode, repeat):
    script = tmp_path / "ranks.py"
    script.write_text(SCRIPT)
    for attempt in range(repeat):
        results = launch(script, mode)
        text = "".join(f"--- exit {rc}\n{out}{err}" for rc, out, err in results)
        assert all(rc == 0 for rc, _, _ in results), f"attempt {attempt}:\n{text}"
        assert "terminate called" not in text, f"attempt {attempt}:\n{text}"
        for rank in range(2):
            assert f"rank {rank} done" in text, f"attempt {attempt}:\n{text}"
            assert f"ATEXIT-MARKER rank {rank} backend threads: none" in text, f"attempt {attempt}:\n{text}"


def test_peer_death_error_exits_with_its_code(tmp_path):
    """Rank 1 vanishes; rank 0's collective raises, uncaught: the traceback's frames held the group until exit,
    and the communicator's atexit handler still tears it down before finalization."""
    script = tmp_path / "ranks.py"
    script.write_text(SCRIPT)
    for attempt in range(REPEAT):
        (rc0, out0, err0), (rc1, out1, err1) = run_srun_like(script, "peer-dies")
        text = f"--- rank 0: exit {rc0}\n{out0}{err0}--- rank 1: exit {rc1}\n{out1}{err1}"
        assert rc1 == 3 and rc0 == 1, f"attempt {attempt}:\n{text}"
        assert "Traceback" in err0 and "RuntimeError" in err0, f"attempt {attempt}:\n{text}"
        assert "terminate called" not in text and "still referenced at exit" not in text, f"attempt {attempt}:\n{text}"
        assert "ATEXIT-MARKER rank 0 backend threads: none" in out0, f"attempt {attempt}:\n{text}"
