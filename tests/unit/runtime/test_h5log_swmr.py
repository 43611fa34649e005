"""H5Log as an SWMR writer: readers in other processes see every flushed row; kill -9 keeps them; resume reopens."""
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis.hdf5 import open_file
from es_hpc.config import ConfigError
from es_hpc.runtime.h5log import H5Log
from es_hpc.runtime.timing import PhaseTimer

TABLES = {"train": {"iteration": ((), np.int64), "rewards": ((3,), np.float32)}}
PY = [sys.executable, "-c"]

# Opens the log once as an SWMR reader and prints its row count each time a refresh() finds it changed, until
# it has seen argv[2] rows (or a generous deadline passes).
READER = """
import sys, time, h5py
f = h5py.File(sys.argv[1], "r", swmr=True)
ds, seen, deadline = f["train/iteration"], -1, time.time() + 120
while seen < int(sys.argv[2]) and time.time() < deadline:
    ds.refresh()
    if ds.shape[0] != seen:
        seen = ds.shape[0]
        print(seen, *ds[:], flush=True)
    time.sleep(0.005)
"""

# Appends rows as fast as it can, printing each row's index once it is flushed, until killed.
WRITER = """
import sys, numpy as np
from es_hpc.runtime.h5log import H5Log
log = H5Log(sys.argv[1], {"config": "{}"}, {"train": {"iteration": ((), np.int64), "rewards": ((3,), np.float32)}})
t = 0
while True:
    log.append("train", {"iteration": t, "rewards": np.full(3, t)})
    print(t, flush=True)
    t += 1
"""


def row(t):
    return {"iteration": np.int64(t), "rewards": np.full(3, t, np.float32)}


def test_reader_in_another_process_sees_each_flushed_row(tmp_path):
    path = tmp_path / "log.h5"
    log = H5Log(path, {"config": "{}"}, TABLES)
    reader = subprocess.Popen([*PY, READER, str(path), "5"], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().split() == ["0"]  # open while the writer holds the file
        for t in range(5):
            log.append("train", row(t))
            assert reader.stdout.readline().split() == [str(t + 1), *map(str, range(t + 1))]
    finally:
        log.close()
        reader.kill()
        reader.wait()


def test_rows_must_match_the_declared_layout(tmp_path):
    log = H5Log(tmp_path / "log.h5", {}, TABLES)
    with pytest.raises(KeyError, match=r"a row of eval/ has columns \['iteration'\]; the layout declares \[\]"):
        log.append("eval", {"iteration": 0})
    with pytest.raises(KeyError, match="the layout declares"):
        log.append("train", {"iteration": 0})  # a column missing
    with pytest.raises(KeyError, match="the layout declares"):
        log.append("train", {**row(0), "tokens": 3})  # a column not declared
    log.append("train", row(0))
    log.close()
    with pytest.raises(ConfigError, match=r"train/rewards: .* holds no rows of shape \(4,\) and dtype float32"):
        H5Log(tmp_path / "log.h5", {}, {"train": {**TABLES["train"], "rewards": ((4,), np.float32)}},
              resume_iteration=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.h5"]  # no copy left behind
    with pytest.raises(KeyError, match="'log' is not one of its phases"):
        with PhaseTimer()("log"):
            pass


def test_resume_reopens_in_swmr_mode(tmp_path):
    path = tmp_path / "log.h5"
    log = H5Log(path, {"config": "{}", "world_size": 2}, TABLES)
    for t in range(5):
        log.append("train", row(t))
    log.close()
    log = H5Log(path, {}, TABLES, resume_iteration=3)
    assert log.f.swmr_mode
    log.append("train", row(3))
    reader = subprocess.run([*PY, READER, str(path), "4"], capture_output=True, text=True, timeout=120)
    assert reader.stdout.split("\n")[0].split() == ["4", "0", "1", "2", "3"], reader.stderr
    log.close()
    with h5py.File(path, "r") as f:  # closed: any reader opens it
        assert f.attrs["resumed_at"].tolist() == [3] and f.attrs["world_size"] == 2 and f.attrs["config"] == "{}"
        assert f["train/rewards"].dtype == np.float32 and f["train/rewards"].maxshape == (None, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.h5"]


def test_kill_9_keeps_flushed_rows_and_resume_works(tmp_path):
    path = tmp_path / "log.h5"
    writer = subprocess.Popen([*PY, WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        while int(writer.stdout.readline()) < 20:  # ValueError if the writer died: it prints nothing more
            pass
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    with open_file(path) as f:  # the file of a killed SWMR writer opens as an SWMR reader
        t, rewards = f["train/iteration"][:], f["train/rewards"][:]
    n = min(len(t), len(rewards))  # a kill mid-row can leave one column a row ahead
    assert n >= 21 and t[:n].tolist() == list(range(n))
    assert np.array_equal(rewards[:n], np.repeat(np.arange(n, dtype=np.float32)[:, None], 3, axis=1))

    log = H5Log(path, {}, TABLES, resume_iteration=10)
    for t in range(10, 12):
        log.append("train", row(t))
    log.close()
    with h5py.File(path, "r") as f:
        assert f["train/iteration"][:].tolist() == list(range(12)) and f["train/rewards"].shape == (12, 3)
        assert f.attrs["resumed_at"].tolist() == [10]


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    """SWMR leaves the file unlocked, so the writer lock is what refuses a --resume beside a live job."""
    path = tmp_path / "log.h5"
    log = H5Log(path, {"config": "{}"}, TABLES)
    log.append("train", row(0))
    with pytest.raises(FileExistsError, match="is being written by a job that is still running"):
        H5Log(path, {}, TABLES, resume_iteration=1)
    log.close()
    resumed = H5Log(path, {}, TABLES, resume_iteration=1)
    resumed.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.h5"]
