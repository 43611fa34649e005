"""CLSS on Algorithm 1 itself (the toy ES simulator): the measured kappa_eff recovers Eq. 27 at the
measured alpha_eff for every shaping and update form; the nominal sigma^2/N fit does not and says so."""

import json

import h5py
import numpy as np
import pytest

from analysis import clss
from analysis.clss import kappa as kp
from analysis.clss.__main__ import main as clss_main
from analysis.toy import closed_forms as cf
from analysis.toy.__main__ import main as toy_main
from analysis.toy.simulate import es_clss_runs
from analysis.toy.spectroscopy import default_steps, es_probes

POPULATIONS = (16, 32, 64, 128, 256)
SIGMA = 0.1


def drawn(rng):
    """A two-block spectrum with random D, d and eigenvalues, never one the code was tuned on."""
    dim = int(rng.integers(40, 80))
    return cf.two_block_spectrum(dim, int(rng.integers(4, dim // 4)), rng.uniform(1.5, 3.0), rng.uniform(0.25, 0.5))


def alpha_for(lam, shaping, update_form, alpha_eff):
    """The nominal alpha giving ES the effective step alpha_eff at theta* (SCHEMA.md)."""
    return alpha_eff / cf.es_gain(lam, 1.0, SIGMA, shaping, update_form)


@pytest.mark.parametrize("shaping, update_form, draw", [
    ("raw", "eq1", 1), ("zscore", "eq1", 2), ("zscore", "qiu", 3), ("centered_rank", "qiu", 4)])
def test_measured_kappa_recovers_eq27(shaping, update_form, draw):
    rng = np.random.default_rng(100 + draw)
    lam = drawn(rng)
    target = rng.uniform(0.5, 1.0) / lam.max()  # alpha_eff lambda_hi in [0.5, 1.0]
    alpha = alpha_for(lam, shaping, update_form, target)
    probes = es_probes(lam, alpha, SIGMA, POPULATIONS, 32, default_steps(lam, target), rng, shaping, update_form)
    result = clss.fit(probes, alpha, clss.Settings(n_fit=3))  # Algorithm 2's largest few N
    assert result.kappa_source == "measured" and result.ok, result.reason
    assert result.alpha_eff == pytest.approx(target, rel=0.25)
    assert result.d_eff == pytest.approx(cf.d_eff(lam, result.alpha_eff), rel=0.15)
    nominal = clss.fit(probes, alpha, clss.Settings(n_fit=3, kappa="nominal"))
    assert nominal.kappa_source == "nominal"
    assert not nominal.d_eff == pytest.approx(cf.d_eff(lam, result.alpha_eff), rel=0.5)


def test_state_dependent_step_fails_with_its_reason():
    """zscore at N = 16 with alpha_eff tr H / 2 = 7: the step shrinks as the noise grows, so over all N
    the gap is not linear in kappa_eff, and the verdict says why."""
    rng = np.random.default_rng(103)
    lam = drawn(rng)
    target = rng.uniform(0.5, 1.0) / lam.max()
    alpha = alpha_for(lam, "zscore", "qiu", target)
    probes = es_probes(lam, alpha, SIGMA, POPULATIONS, 32, default_steps(lam, target), rng, "zscore", "qiu")
    result = clss.fit(probes, alpha)
    assert not result.ok and result.reason.startswith("the measured step alpha_eff varies")


def test_step_noise_of_raw_eq1_is_the_update_variance():
    """raw + eq1: alpha_eff = alpha and kappa_eff = sum u^2 / (N^2 sigma^2), by hand."""
    member, base = np.array([[1.0, 2.0, 4.0]]), np.array([1.5])
    gain, kappa = kp.step_noise(member, 0.2, 0.5, "raw", "eq1", base)
    assert gain[0] == pytest.approx(0.2)
    assert kappa[0] == pytest.approx((0.25 + 0.25 + 6.25) / (9 * 0.25))
    gain, _ = kp.step_noise(member, 0.2, 0.5, "zscore", "qiu", base)
    assert gain[0] == pytest.approx(0.2 * 0.5 * (1 - 2 / 3) / member.std())


def write_es_file(path, lam, alpha, shaping, update_form, rng):
    """The layout the clss job writes (SCHEMA.md): rewards, distance, member_rewards, baseline_rewards."""
    steps = default_steps(lam, cf.es_gain(lam, alpha, SIGMA, shaping, update_form))
    with h5py.File(path, "w") as f:
        for n in POPULATIONS:
            rewards, dist, members, base = es_clss_runs(lam, alpha, SIGMA, n, 16, steps, rng, shaping, update_form)
            g = f.create_group(f"clss/N{n}")
            g.attrs.update(population=n, sigma=SIGMA, alpha=alpha, shaping=shaping, update_form=update_form,
                           baseline=True)
            g.create_dataset("rewards", data=rewards[:, 1:].astype(np.float32))
            g.create_dataset("distance", data=dist[:, 1:].astype(np.float32))
            g.create_dataset("member_rewards", data=members.astype(np.float32))
            g.create_dataset("baseline_rewards", data=base.astype(np.float32))


def test_cli_uses_member_rewards_when_present(tmp_path, capsys):
    rng = np.random.default_rng(7)
    lam = drawn(rng)
    alpha = alpha_for(lam, "zscore", "eq1", 0.8 / lam.max())
    write_es_file(tmp_path / "es.h5", lam, alpha, "zscore", "eq1", rng)
    assert clss_main([str(tmp_path / "es.h5"), "--n-fit", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kappa_source"] == "measured"
    assert report["d_eff"] == pytest.approx(cf.d_eff(lam, report["alpha_eff"]), rel=0.15)
    clss_main([str(tmp_path / "es.h5"), "--kappa", "nominal", "--json"])
    nominal = json.loads(capsys.readouterr().out)
    assert nominal["kappa_source"] == "nominal" and nominal["alpha_eff"] is None


def test_toy_command_es_simulator(capsys):
    argv = ["clss", "--simulator", "es", "--shaping", "zscore", "--update-form", "qiu", "--dim", "48", "--stiff", "6",
            "--lam-hi", "2", "--lam-lo", "0.4", "--alpha", "0.06", "--sigma", "0.1", "--seeds", "24",
            "--populations", "16", "32", "64", "128", "--n-fit", "3", "--json"]
    assert toy_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["simulator"] == "es" and report["kappa_source"] == "measured"
    assert abs(report["rel_error"]) < 0.15
    assert report["nominal"]["kappa_source"] == "nominal"
