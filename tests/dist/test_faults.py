"""Faults on 2 ranks: a corrupted rank is named, a killed rank ends the job, signals checkpoint on all ranks."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from helpers import final_weights, rewards, run, same_bits, start, train_cmd, wait_for

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_corrupted_rank_is_named(tiny_model_dir, tmp_path):
    """Rank 1 loads a copy of the model with one weight off by one ulp: the checksum stops both ranks."""
    bad = tmp_path / "bad-model"
    shutil.copytree(tiny_model_dir, bad)
    tensors = load_file(bad / "model.safetensors")
    name = sorted(tensors)[0]
    flat = tensors[name].view(-1)
    flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf")))
    save_file(tensors, bad / "model.safetensors", metadata={"format": "pt"})
    (bad / "tiny_model.json").unlink()  # its digests would refuse the copy at load, before any checksum

    port = free_port()
    procs = []
    for rank, model in enumerate([tiny_model_dir, bad]):
        env = {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        cmd = train_cmd(model, tmp_path / "run", ["dist.backend=torch"])
        procs.append((start(cmd, tmp_path / f"rank{rank}.log", env=env), tmp_path / f"rank{rank}.log"))
    for proc, log in procs:
        assert proc.wait(timeout=300) == 1, log.read_text()
        text = log.read_text()
        assert "error: parameter checksum of rank(s) [1] differs from rank 0's at iteration 0" in text, text
        assert "Traceback" not in text


def worker_pids(launcher: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killed_rank_ends_the_job(tiny_model_dir, tmp_path):
    log = tmp_path / "torchrun.log"
    proc = start(train_cmd(tiny_model_dir, tmp_path / "run", ["train.iterations=500"]), log, launcher=TORCHRUN)
    wait_for(log, "iter      1", proc)
    workers = worker_pids(proc)
    assert len(workers) == 2
    t0 = time.time()
    os.kill(workers[1], signal.SIGKILL)
    code = proc.wait(timeout=90)
    assert code != 0 and time.time() - t0 < 90
    text = log.read_text()
    assert "Signal 9 (SIGKILL)" in text and "rank      : 1" in text, text[-3000:]  # torchrun names the rank
    with h5py.File(tmp_path / "run" / "es_log.h5", "r") as f:  # the log survived the crash
        assert f["train/rewards"].shape[0] >= 1


def test_signal_on_ranks_checkpoints_and_resumes(tiny_model_dir, tmp_path):
    sets = ["train.iterations=8", "train.checkpoint_every=100", "train.eval_every=4", "es.population=6"]
    run(train_cmd(tiny_model_dir, tmp_path / "whole", sets))
    log = tmp_path / "torchrun.log"
    proc = start(train_cmd(tiny_model_dir, tmp_path / "broken", sets), log, launcher=TORCHRUN)
    wait_for(log, "iter      1", proc)
    for pid in worker_pids(proc):
        os.kill(pid, signal.SIGUSR1)
    proc.wait(timeout=120)
    text = log.read_text()
    assert text.count("preempted: stopped by a signal") == 2, text[-3000:]  # both ranks agreed and stopped
    assert (tmp_path / "broken" / "checkpoints" / "latest").is_file()
    run(train_cmd(tiny_model_dir, tmp_path / "broken", sets, resume=True), launcher=TORCHRUN)
    assert np.array_equal(rewards(tmp_path / "broken"), rewards(tmp_path / "whole"))
    assert same_bits(final_weights(tmp_path / "broken"), final_weights(tmp_path / "whole"))
