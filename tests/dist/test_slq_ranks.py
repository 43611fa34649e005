"""The slq job on 1 process and on 2 torchrun ranks (gloo, CPU): the same Lanczos coefficients and spectrum."""
import sys

import h5py
import numpy as np
import pytest

from helpers import REPO, run

SETS = {  # two probes, so each rank runs one; stein: its 4 candidates are dealt over the ranks too
    "hvp": ["slq.probes=2", "slq.steps=4", "slq.prompts=4"],
    "stein": ["slq.operator=stein", "slq.probes=2", "slq.steps=6", "slq.candidates=4", "slq.prompts=8"],
}


def slq_cmd(model_dir, out, sets):
    cmd = ["-m", "es_hpc", "slq", "--config", str(REPO / "configs" / "tiny_slq.yaml"), "--checkpoint",
           str(model_dir), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


@pytest.mark.parametrize("kind", sorted(SETS))
def test_one_rank_equals_two_ranks(tiny_model_dir, tmp_path, kind):
    run(slq_cmd(tiny_model_dir, tmp_path / "one", SETS[kind] + ["runtime.threads=1"]))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run(slq_cmd(tiny_model_dir, tmp_path / "two", SETS[kind]), launcher=torchrun)
    with h5py.File(tmp_path / "one" / "slq.h5", "r") as f, h5py.File(tmp_path / "two" / "slq.h5", "r") as g:
        assert g.attrs["world_size"] == 2 and g.attrs["comm"] == "torch"
        a, b = f["slq"], g["slq"]
        assert a["alpha"].shape == b["alpha"].shape and a["alpha"].shape[0] == 2
        scale = np.abs(a["alpha"][()]).max()  # rounding is relative to the operator's norm, not to each entry
        for key in ("alpha", "beta"):
            np.testing.assert_allclose(b[key][()], a[key][()], rtol=1e-9, atol=1e-9 * scale, err_msg=key)
        np.testing.assert_array_equal(b["probe_norm2"][()], a["probe_norm2"][()])
        assert not np.allclose(a["alpha"][0], a["alpha"][1])  # the two probes differ, so equality is not trivial
        if kind == "stein":
            np.testing.assert_array_equal(b["stein/rewards"][()], a["stein/rewards"][()])
            np.testing.assert_allclose(b["stein/eigenvalues"][()], a["stein/eigenvalues"][()], rtol=1e-9)
            np.testing.assert_allclose(b["stein/null_eigenvalues"][()], a["stein/null_eigenvalues"][()], rtol=1e-9)
