"""The same run on 1 process and on 2 MPI ranks (launch/mpirun.sh, mpi4py): identical rewards, bit-identical
weights, as in test_torchrun_invariance.py. Skipped only where mpirun or mpi4py is missing
(`bash tests/infra/install_mpi.sh` installs both); with ES_HPC_REQUIRE_MPI=1 (CI) their absence fails instead."""
import importlib.util
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from helpers import REPO, final_weights, rewards, run, same_bits, train_cmd

SETS = ["es.population=6", "train.iterations=3"]
# Two ranks of this interpreter, as launch/mpirun.sh starts them (Open MPI refuses root without the flag).
MPIRUN = ["mpirun", "-n", "2", "--bind-to", "none", "--oversubscribe",
          *(["--allow-run-as-root"] if os.geteuid() == 0 else []), sys.executable]


@pytest.fixture
def mpi(monkeypatch):
    """Skip (or fail under ES_HPC_REQUIRE_MPI=1) without mpirun and mpi4py; ranks use this interpreter."""
    missing = [name for name, ok in [("mpirun", shutil.which("mpirun")),
                                     ("mpi4py", importlib.util.find_spec("mpi4py"))] if not ok]
    if missing:
        why = f"{' and '.join(missing)} not installed (bash tests/infra/install_mpi.sh)"
        if os.environ.get("ES_HPC_REQUIRE_MPI") == "1":
            pytest.fail(why)
        pytest.skip(why)
    monkeypatch.setenv("PYTHON", sys.executable)


def test_one_rank_equals_two_mpi_ranks(mpi, tiny_model_dir, tmp_path):
    run(train_cmd(tiny_model_dir, tmp_path / "one", SETS))
    args = train_cmd(tiny_model_dir, tmp_path / "two", SETS)  # -m es_hpc train --config C --out D --set ...
    proc = run(["2", args[4], args[6], *args[7:]], launcher=["bash", str(REPO / "launch" / "mpirun.sh")])
    assert "2 rank(s)" in proc.stdout
    with h5py.File(tmp_path / "two" / "es_log.h5", "r") as f:
        assert f.attrs["world_size"] == 2 and f.attrs["comm"] == "mpi"
    r1, r2 = rewards(tmp_path / "one"), rewards(tmp_path / "two")
    assert r1.shape == (3, 6) and np.array_equal(r1, r2)
    assert len(np.unique(r1)) > 1  # the members really differ, so equality is not trivial
    assert same_bits(final_weights(tmp_path / "one"), final_weights(tmp_path / "two"))


def test_mpi_comm_ranks_and_allreduce(mpi):
    code = ("import sys\nimport numpy as np\nfrom es_hpc.comm import make\nc = make('auto')\n"
            "x = np.zeros(3); x[c.rank] = 0.1 * (c.rank + 1); x[2] = 2.0 ** -60\n"
            "got = [c.name, c.rank, c.world_size, c.local_rank, c.local_world_size, *c.allreduce_sum(x).tolist()]\n"
            "sys.stdout.write(' '.join(map(str, got)) + '\\n')  # one write: mpirun interleaves the ranks' writes\n"
            "c.barrier(); c.close()\n")
    lines = sorted(run(["-c", code], launcher=MPIRUN).stdout.split("\n"))[-2:]
    assert lines == [f"mpi {r} 2 {r} 2 0.1 0.2 {2.0 ** -59!r}" for r in (0, 1)]


FAIL = """import sys
import numpy as np
from contextlib import ExitStack
from es_hpc.comm import make
try:
    with ExitStack() as stack:  # as train.run does: close() runs while the exception propagates
        c = make('mpi'); stack.callback(c.close)
        if sys.argv[1] == 'all' or c.rank == 1:
            raise KeyError('failed')
        c.allreduce_sum(np.zeros(2))  # rank 0 would wait here for ever if rank 1 only finalised
except KeyError:
    sys.exit(75)
"""


@pytest.mark.parametrize("who", ["all", "one"])
def test_failing_ranks_end_the_job(mpi, who):
    """Failing together keeps the exit code; one rank failing alone aborts the job instead of hanging."""
    proc = subprocess.run([*MPIRUN, "-c", FAIL, who], capture_output=True, text=True, timeout=120)  # a hang fails
    assert proc.returncode == (75 if who == "all" else 1), proc.stderr
