"""The antithetic reward probe on 1 process and on 2 torchrun ranks (gloo, CPU): the same stored candidates, both
sides, bit for bit."""
import sys

import h5py
import numpy as np

from helpers import REPO, run

# M = 5: the last chunk of each block has one candidate for two ranks
SETS = ["probe.sigmas=[1e-3, 1e-2]", "probe.batches=1", "probe.candidates=5", "probe.pool_size=16",
        "probe.drift_every=1", "probe.antithetic=true"]


def probe_cmd(model_dir, out):
    cmd = ["-m", "es_hpc", "probe", "--config", str(REPO / "configs" / "tiny_probe.yaml"), "--out", str(out),
           "--set", f"model.path={model_dir}"]
    for s in SETS:
        cmd += ["--set", s]
    return cmd


def test_one_rank_equals_two_ranks(tiny_model_dir, tmp_path):
    run(probe_cmd(tiny_model_dir, tmp_path / "one"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = run(probe_cmd(tiny_model_dir, tmp_path / "two"), launcher=torchrun)
    assert "2 rank(s)" in proc.stdout
    with h5py.File(tmp_path / "one" / "probe.h5", "r") as f, h5py.File(tmp_path / "two" / "probe.h5", "r") as g:
        assert g.attrs["world_size"] == 2 and g.attrs["comm"] == "torch"
        assert g["probe/baseline/reward"][()] == f["probe/baseline/reward"][()]
        deltas = []
        for i in range(2):
            for key in ("seeds", "reward", "delta", "bits", "tokens", "reward_minus", "delta_minus", "bits_minus",
                        "tokens_minus"):
                name = f"probe/sigma{i}/batch0/{key}"
                assert np.array_equal(f[name][()], g[name][()]), name  # bits and tokens gathered on rank 0
            deltas += list(f[f"probe/sigma{i}/batch0/delta"][()])
        assert len(set(deltas)) > 1  # the candidates really differ, so equality is not trivial
        # every rank re-measured its unperturbed reward after each chunk (3 per block) and at the start
        assert g["probe/drift/rank"][()].tolist() == [0, 1] * (1 + 2 * 3)
        assert np.all(g["probe/drift/delta"][()] == 0)
