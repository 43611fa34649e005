"""Communicator choice and launcher environments: pure environment logic, no process group is joined."""
import subprocess
import sys

import pytest

from es_hpc.comm import LocalComm, detect, make
from es_hpc.comm.torch_dist import first_host, slurm_env, tasks_on_node


@pytest.mark.parametrize("env, expected", [
    ({}, "local"),
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "1"}, "torch"),  # torchrun, even with one rank
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "n1", "RANK": "1"}, "torch"),  # torchrun-like launchers
    ({"WORLD_SIZE": "2"}, "local"),  # no rendezvous address: not a torch.distributed launch
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}, "mpi"),  # Open MPI's mpirun
    ({"OMPI_COMM_WORLD_SIZE": "1"}, "local"),  # mpirun -n 1: nothing to communicate
    ({"PMI_SIZE": "4", "PMI_RANK": "3"}, "mpi"),  # MPICH / Intel MPI (Hydra), srun --mpi=pmi2
    ({"PMIX_RANK": "0", "SLURM_NTASKS": "8", "SLURM_PROCID": "0"}, "mpi"),  # srun --mpi=pmix
    ({"PMIX_RANK": "0", "SLURM_NTASKS": "1"}, "local"),
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "n1", "PMI_SIZE": "2"}, "torch"),
    ({"OMPI_COMM_WORLD_SIZE": "junk"}, "local"),
])
def test_auto_detection(env, expected):
    assert detect(env) == expected


def test_make_local_and_unknown(monkeypatch):
    for var in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(make("auto"), LocalComm) and isinstance(make("local"), LocalComm)
    with pytest.raises(ValueError, match="unknown communicator 'gloo'"):
        make("gloo")


@pytest.mark.parametrize("spec, node, n", [("4", 0, 4), ("4", 3, 4), ("2(x3)", 2, 2), ("4(x2),3", 1, 4),
                                           ("4(x2),3", 2, 3), ("1,2,3", 1, 2)])
def test_tasks_on_node(spec, node, n):
    assert tasks_on_node(spec, node) == n


@pytest.mark.parametrize("nodelist, host", [("gpu[03-05,9],cpu1", "gpu03"), ("node7,node8", "node7"),
                                            ("solo", "solo"), ("n[12-13]-ib", "n12-ib"), ("a[7]", "a7")])
def test_first_host_without_scontrol(monkeypatch, tmp_path, nodelist, host):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol: the built-in parser answers
    assert first_host(nodelist) == host


def test_first_host_asks_scontrol(monkeypatch, tmp_path):
    fake = tmp_path / "scontrol"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "x%s-first\\nx-second\\n" "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert first_host("weird[1-2]") == "xweird[1-2]-first"


SLURM = {"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
         "SLURM_STEP_TASKS_PER_NODE": "2(x2),2", "SLURM_NTASKS_PER_NODE": "9", "SLURM_JOB_ID": "1234567",
         "SLURM_JOB_NODELIST": "gpu[03-05]"}


def test_slurm_env_translation():
    env = slurm_env(SLURM, hosts=lambda nodelist: nodelist.upper())
    assert env == {"RANK": "5", "WORLD_SIZE": "6", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                   "MASTER_ADDR": "GPU[03-05]", "MASTER_PORT": str(20000 + 1234567 % 10000)}


def test_slurm_env_keeps_given_address_and_falls_back():
    env = slurm_env({**SLURM, "MASTER_ADDR": "head", "MASTER_PORT": "4242"}, hosts=lambda _: pytest.fail("asked"))
    assert env["MASTER_ADDR"] == "head" and env["MASTER_PORT"] == "4242"
    env = slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1"})
    assert env == {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def test_mpi_without_mpi4py_is_one_line():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from es_hpc.comm import make\n"
            "try:\n    make('mpi')\nexcept ValueError as exc:\n    print(exc)\n    sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dist.backend mpi: mpi4py is unavailable"), proc.stdout
    assert "pip install mpi4py" in lines[0] and "openmpi-bin libopenmpi-dev" in lines[0]


class Leaving(LocalComm):
    """A one-process communicator that records when it leaves its (absent) group."""

    def __init__(self, calls):
        self.calls = calls

    def _leave(self):
        self.calls.append("leave")


def test_before_close_callbacks_run_first_last_registered_first_and_once():
    calls = []
    comm = Leaving(calls)
    comm.before_close(lambda: calls.append("engine a"))
    comm.before_close(lambda: calls.append("engine b"))
    comm.close()
    comm.close()
    assert calls == ["engine b", "engine a", "leave", "leave"]


def test_the_group_is_left_even_when_a_callback_fails():
    calls = []
    comm = Leaving(calls)
    comm.before_close(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        comm.close()
    assert calls == ["leave"]


class SecondOfTwo(LocalComm):
    """Rank 1 of 2, whose all-reduce adds what rank 0 contributed: rank 0's text in row 0."""
    rank, world_size = 1, 2

    def _allreduce(self, buf):
        other = LocalComm().allgather_text("es-node0", width=buf.shape[1])
        buf[0, :len(other[0])] += [ord(c) for c in other[0]]
        return buf


def test_allgather_text_puts_every_rank_in_its_row():
    """Rank order, UTF-8 and truncation to `width` bytes; the zero padding is stripped."""
    comm = SecondOfTwo()
    assert comm.allgather_text("es-node1") == ["es-node0", "es-node1"]
    assert comm.allgather_text("n\u00e9ud-" + "x" * 100, width=8) == ["es-node0", "n\u00e9ud-xx"]
    assert comm.bytes_sent == 2 * 64 * 8 + 2 * 8 * 8  # float64 rows of both ranks, counted like any reduction
    assert LocalComm().allgather_text("h") == ["h"] and LocalComm().bytes_sent == 0


def test_a_closed_peer_connection_is_one_line_naming_the_peer():
    """gloo's error for a peer that went away becomes PeerLost naming this rank and the peer's host; any other
    error of a collective passes unchanged."""
    from es_hpc.comm.torch_dist import TorchDistComm
    from es_hpc.errors import PeerLost

    comm = object.__new__(TorchDistComm)  # no process group: only _collective's error handling is exercised
    comm.rank = 3

    def all_reduce(message):
        raise RuntimeError(message)

    with pytest.raises(PeerLost, match=r"^rank 3 on .+: lost the connection to [^ ]+ \(127\.0\.0\.1\) in all_reduce"):
        comm._collective(all_reduce, "[gloo/pair.cc:553] Connection closed by peer [127.0.0.1]:38608. GLHF")
    with pytest.raises(RuntimeError, match="^Timed out") as info:
        comm._collective(all_reduce, "Timed out waiting 600000ms for recv operation")
    assert not isinstance(info.value, PeerLost)
