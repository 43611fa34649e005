"""SIGTERM / SIGUSR1: finish the iteration, checkpoint, exit 75; --resume then equals the unbroken run."""
import re
import signal

import h5py
import numpy as np
import pytest

from helpers import DEADLINE, final_weights, rewards, run, same_bits, start, train_cmd, wait_for

SETS = ["train.iterations=8", "train.checkpoint_every=100", "train.eval_every=4"]


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_exact(tiny_model_dir, tmp_path, sig):
    run(train_cmd(tiny_model_dir, tmp_path / "whole", SETS))
    log = tmp_path / "broken.log"
    proc = start(train_cmd(tiny_model_dir, tmp_path / "broken", SETS), log)
    wait_for(log, "es_hpc train:", proc)  # printed once the handlers are installed, before the first iteration
    proc.send_signal(sig)
    assert proc.wait(timeout=DEADLINE) == 75, log.read_text()
    text = log.read_text()
    assert "preempted: stopped by a signal" in text and "Traceback" not in text
    done = int(re.search(r"stopped by a signal after iteration (\d+)", text).group(1)) + 1
    assert (tmp_path / "broken" / "checkpoints" / "latest").read_text().strip() == f"iter_{done:06d}"
    assert done < 8  # checkpoint_every=100: this checkpoint exists only because of the signal
    with h5py.File(tmp_path / "broken" / "es_log.h5", "r") as f:
        assert f["train/iteration"].shape == (done,)

    run(train_cmd(tiny_model_dir, tmp_path / "broken", SETS, resume=True))
    assert np.array_equal(rewards(tmp_path / "broken"), rewards(tmp_path / "whole"))
    assert same_bits(final_weights(tmp_path / "broken"), final_weights(tmp_path / "whole"))
