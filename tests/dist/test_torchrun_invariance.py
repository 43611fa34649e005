"""The same run on 1 process and on 2 torchrun ranks (gloo, CPU): identical rewards, bit-identical weights; also
with low-rank noise, where the single process evaluates 3 members per batched call and each rank one."""
import sys

import h5py
import numpy as np
import pytest

from helpers import final_weights, rewards, run, same_bits, train_cmd

SETS = ["es.population=6", "train.iterations=3"]


@pytest.mark.parametrize("one, two", [
    ([], []),
    (["es.perturbation=lowrank", "generation.members_per_call=3"], ["es.perturbation=lowrank"]),
], ids=["isotropic", "lowrank"])
def test_one_rank_equals_two_ranks(tiny_model_dir, tmp_path, one, two):
    run(train_cmd(tiny_model_dir, tmp_path / "one", SETS + one))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = run(train_cmd(tiny_model_dir, tmp_path / "two", SETS + two), launcher=torchrun)
    assert "2 rank(s)" in proc.stdout
    with h5py.File(tmp_path / "two" / "es_log.h5", "r") as f, h5py.File(tmp_path / "one" / "es_log.h5", "r") as g:
        assert f.attrs["world_size"] == 2 and f.attrs["comm"] == "torch"
        assert np.array_equal(f["train/prompt_bits"][:], g["train/prompt_bits"][:])  # gathered on rank 0
        # rewards + token count + stop vote + failed rewards (N + 3 float64), packed bits (N bytes for P=8), checksum
        # at t=0 (W float64)
        assert f["train/comm_bytes"][:].tolist() == [(6 + 3) * 8 + 6 + 2 * 8, (6 + 3) * 8 + 6, (6 + 3) * 8 + 6]
    r1, r2 = rewards(tmp_path / "one"), rewards(tmp_path / "two")
    assert r1.shape == (3, 6) and np.array_equal(r1, r2)
    assert len(np.unique(r1)) > 1  # the members really differ, so equality is not trivial
    assert same_bits(final_weights(tmp_path / "one"), final_weights(tmp_path / "two"))
