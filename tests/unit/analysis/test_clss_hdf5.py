"""The HDF5 path of CLSS: files in SCHEMA.md's layout written with h5py from the toy simulator."""

import json

import h5py
import numpy as np
import pytest

from analysis import clss
from analysis.clss.__main__ import main
from analysis.toy import closed_forms as cf
from analysis.toy.spectroscopy import default_steps, ou_probes

LAM = cf.two_block_spectrum(24, 3, 1.5, 0.1)


def write(path, probes_by_alpha, with_distance=True):
    """Write probe sets as /clss/a{i}_N{n} groups (float32 datasets, attributes population, sigma, alpha)."""
    with h5py.File(path, "w") as f:
        f.attrs["config"] = json.dumps({"job": "clss"})  # root metadata is ignored
        for i, (alpha, probes) in enumerate(sorted(probes_by_alpha.items())):
            for p in probes:
                group = f.create_group(f"clss/a{i}_N{p.population}")
                group.attrs.update(population=p.population, sigma=p.sigma, alpha=alpha)
                group.create_dataset("rewards", data=p.rewards.astype(np.float32))
                if with_distance:
                    group.create_dataset("distance", data=p.distance.astype(np.float32))


def toy_probes(alpha, steps=None, seed=0):
    return ou_probes(LAM, alpha, 1.0, (4, 8, 16, 32, 64), 32, steps or default_steps(LAM, alpha),
                     np.random.default_rng(seed))


def run(argv, capsys):
    status = main([str(a) for a in argv] + ["--json"])
    return status, json.loads(capsys.readouterr().out)


def test_cli_fits_a_toy_file(tmp_path, capsys):
    probes = toy_probes(0.3)
    write(tmp_path / "probe.h5", {0.3: probes})
    status, report = run([tmp_path / "probe.h5"], capsys)
    assert status == 0 and report["ok"]
    assert report["d_eff"] == pytest.approx(cf.d_eff(LAM, 0.3), rel=0.1)
    in_memory = clss.fit(probes, 0.3)
    assert report["d_eff"] == pytest.approx(in_memory.d_eff, rel=1e-4)  # float32 storage only
    assert report["fitted"] == [4, 8, 16, 32, 64] and len(report["plateaus"]) == 5


def test_read_groups_by_alpha_and_optional_distance(tmp_path):
    write(tmp_path / "probe.h5", {0.3: toy_probes(0.3), 0.6: toy_probes(0.6)}, with_distance=False)
    loaded = clss.read_hdf5(tmp_path / "probe.h5")
    assert sorted(loaded) == [0.3, 0.6]
    assert sorted(p.population for p in loaded[0.6]) == [4, 8, 16, 32, 64]
    assert all(p.distance is None and p.rewards.shape[0] == 32 for p in loaded[0.3])


def test_cli_takes_first_passing_alpha(tmp_path, capsys):
    write(tmp_path / "probe.h5", {0.05: toy_probes(0.05, steps=40), 0.3: toy_probes(0.3)})
    status, report = run([tmp_path / "probe.h5"], capsys)
    assert status == 0 and report["alpha"] == 0.3


def test_cli_reports_fail_with_reason(tmp_path, capsys):
    write(tmp_path / "probe.h5", {0.3: toy_probes(0.3)})
    status, report = run([tmp_path / "probe.h5", "--tau-loc", "0.5"], capsys)
    assert status == 1 and not report["ok"]
    assert "non-local" in report["reason"]


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    write(tmp_path / "probe.h5", {0.3: toy_probes(0.3, steps=40)})
    (tmp_path / "text.h5").write_text("not hdf5")
    cases = [([tmp_path / "missing.h5"], "no such file"), ([tmp_path / "text.h5"], "text.h5: "),
             ([tmp_path / "probe.h5", "--group", "other"], "probe.h5: "),
             ([tmp_path / "probe.h5", "--r-min", "1"], "r_min: must be >= 2")]
    for argv, message in cases:
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_short_probes_fail_with_reason(tmp_path, capsys):
    write(tmp_path / "probe.h5", {0.3: toy_probes(0.3, steps=3)})
    status, report = run([tmp_path / "probe.h5"], capsys)
    assert status == 1 and "probe horizon T=3 is too short" in report["reason"]
