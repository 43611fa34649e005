"""``python -m analysis.toy``: the clss subcommand against Eq. 27, and the four figures."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.toy import figures
from analysis.toy.__main__ import main

ROOT = Path(__file__).resolve().parents[3]
PNG = b"\x89PNG\r\n\x1a\n"


def test_clss_command_recovers_eq27_as_json():
    argv = ["-m", "analysis.toy", "clss", "--dim", "40", "--stiff", "5", "--lam-hi", "3", "--lam-lo", "0.2",
            "--alpha", "0.3", "--sigma", "1", "--seeds", "32", "--json"]
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    expected = 2 * (5 / (2 - 0.9) + 35 / (2 - 0.06))  # Eq. 27 by hand
    assert report["ok"] and report["d_eff_eq27"] == pytest.approx(expected)
    assert report["d_eff"] == pytest.approx(expected, rel=0.1)
    lo, hi = report["d_eff_ci"]
    assert lo < report["d_eff"] < hi
    assert {"slope", "plateaus", "eq19_plateaus", "steps", "runtime_s"} <= set(report)


@pytest.mark.parametrize("spectrum", [
    ["--dim", "24", "--stiff", "2", "--lam-hi", "5", "--lam-lo", "0.3", "--alpha", "0.25", "--sigma", "0.5"],
    ["--dim", "16", "--stiff", "12", "--lam-hi", "1.5", "--lam-lo", "0.5", "--alpha", "0.6", "--sigma", "2"],
    ["--dim", "96", "--stiff", "32", "--lam-hi", "0.8", "--lam-lo", "0.15", "--alpha", "0.5", "--sigma", "1"],
])
def test_clss_command_recovers_eq27_on_other_spectra(spectrum, capsys):
    """Two-block spectra unlike Figure 3's (few/many stiff modes, alpha lambda_hi up to 1.25): within 10%."""
    assert main(["clss", *spectrum, "--seeds", "32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["d_eff"] == pytest.approx(report["d_eff_eq27"], rel=0.1)
    lo, hi = report["d_eff_ci"]
    assert lo < report["d_eff_eq27"] < hi


def test_clss_command_fail_status(capsys):
    status = main(["clss", "--dim", "64", "--stiff", "4", "--lam-hi", "1", "--lam-lo", "0.02", "--alpha", "0.1",
                   "--sigma", "1", "--seeds", "32", "--steps", "120"])  # flat modes need ~16 / gamma = 800 steps
    assert status == 1
    assert capsys.readouterr().out.startswith("CLSS FAIL: tails not settled")


@pytest.mark.parametrize("draw, kwargs", [
    (figures.figure3, dict(seeds=16, es_seeds=4, steps=60)),
    (figures.figure7, dict(seeds=16, steps=60)),
    (figures.figure8, dict(seeds=8, dims=(4,))),
    (figures.figure9, dict(seeds=20, steps=300)),
])
def test_figures_write_png(tmp_path, draw, kwargs):
    path = draw(tmp_path / f"{draw.__name__}.png", np.random.default_rng(0), **kwargs)
    data = Path(path).read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000
