"""Live metrics end to end: a train run with log.tensorboard and log.wandb writes TensorBoard event files and an
offline W&B run whose scalars are the HDF5 log's, its iteration lines show t/T, s/it and an ETA, and asking for a
package that cannot be imported stops at start-up with one line and exit code 2."""
import json
import re
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb.proto.wandb_internal_pb2 import Record

from analysis.hdf5 import open_file
from helpers import TINY_CONFIG, run, train_cmd

SETS = ["train.iterations=3", "train.drift_every=2", "log.tensorboard=true", "log.wandb=true"]
ITERATION_LINE = re.compile(r"iter +(\d+)/3  reward mean \d\.\d{4} max \d\.\d{4}  tokens \d+  "
                            r"(\d+\.\d\d) s/it  eta (\d\d):(\d\d)  ")


@pytest.fixture(scope="module")
def live_run(tiny_model_dir, tmp_path_factory):
    """One 3-iteration run with both writers; W&B offline, its own files under the test's directory."""
    tmp = tmp_path_factory.mktemp("live")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(tmp / "wandb-home"))
        proc = run(train_cmd(tiny_model_dir, tmp / "r", SETS))
    return tmp / "r", proc


def _logged(out: Path) -> dict[str, dict[int, float]]:
    """What the live writers should show, read from the HDF5 log: tag -> {iteration: value} for every scalar column
    of the train and eval tables (NaN entries left out), and the mean and max of the members' rewards."""
    expected = {}
    with open_file(out / "es_log.h5") as f:
        for table in ("train", "eval"):
            steps = f[f"{table}/iteration"][()].tolist()
            columns = []  # (name, values) of the table's one-value-per-row datasets, time/PHASE included
            f[table].visititems(lambda name, obj: columns.append((name, obj[()]))
                                if isinstance(obj, h5py.Dataset) and obj.ndim == 1 else None)
            for name, values in columns:
                if name != "iteration":
                    expected[name if "/" in name else f"{table}/{name}"] = {
                        t: float(v) for t, v in zip(steps, values) if not np.isnan(v)}
        rewards, steps = f["train/rewards"][()], f["train/iteration"][()].tolist()
    expected["train/reward_mean"] = dict(zip(steps, rewards.mean(1, dtype=np.float64).tolist()))
    expected["train/reward_max"] = dict(zip(steps, rewards.max(1).astype(float).tolist()))
    return expected


def _wandb_history(run_file: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of an offline W&B run file (LevelDB-log records of wandb's protobuf Record)."""
    data, pos, chunk, history = run_file.read_bytes(), 7, b"", {}
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk, pos = chunk + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or a record's last piece
            record, chunk = Record.FromString(chunk), b""
            if record.WhichOneof("record_type") == "history":
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json)  # either, by version
                       for item in record.history.item}
                for tag, value in row.items():
                    if not tag.startswith("_"):
                        history.setdefault(tag, {})[row["_step"]] = value
    return history


def test_tensorboard_scalars_are_the_logs(live_run):
    out, _ = live_run
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    expected = _logged(out)
    assert {"train/reward_mean", "train/reward_max", "eval/reward", "train/tokens", "train/baseline_drift",
            "time/generate", "time/update"} <= set(expected)
    assert sorted(events.Tags()["scalars"]) == sorted(expected)
    for tag, values in expected.items():
        shown = events.Scalars(tag)
        assert [e.step for e in shown] == list(values), tag
        assert [e.value for e in shown] == pytest.approx(list(values.values()), rel=1e-6), tag
    assert list(expected["train/baseline_drift"]) == [0, 2]  # measured every train.drift_every iterations
    assert list(expected["eval/reward"]) == [0, 1, 2, 3]


def test_wandb_offline_run_holds_the_logs_scalars(live_run):
    out, proc = live_run
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((out / "wandb").iterdir())
    assert f"live metrics: {out / 'tensorboard'}, {runs[0]}" in proc.stdout
    history = _wandb_history(next(runs[0].glob("run-*.wandb")))
    expected = _logged(out)
    assert sorted(history) == sorted(expected)
    for tag, values in expected.items():
        assert list(history[tag]) == list(values), tag
        assert list(history[tag].values()) == pytest.approx(list(values.values()), rel=1e-6), tag


def test_iteration_lines_show_progress_and_eta(live_run):
    _, proc = live_run
    lines = [ITERATION_LINE.match(line) for line in proc.stdout.splitlines() if line.startswith("iter ")]
    assert all(lines) and [int(m[1]) for m in lines] == [0, 1, 2], proc.stdout
    for m in lines:  # the ETA is the iterations left at the mean pace so far
        left = 3 - int(m[1]) - 1
        assert abs(int(m[3]) * 60 + int(m[4]) - float(m[2]) * left) <= 0.5 + 0.005 * left
    assert (lines[-1][3], lines[-1][4]) == ("00", "00")


@pytest.mark.parametrize("key", ["tensorboard", "wandb"])
def test_missing_package_one_line_exit_2(tmp_path, key):
    """The package blocked in the interpreter (as if not installed): the job stops before it creates anything."""
    argv = ["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "r"), "--set", f"log.{key}=true"]
    code = f"import sys; sys.modules[{key!r}] = None; from es_hpc.cli import main; sys.exit(main({argv!r}))"
    proc = run(["-c", code], check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"error: log.{key}: the {key} package is not installed (pip install 'es_hpc[{key}]')\n"
    assert not (tmp_path / "r").exists()
