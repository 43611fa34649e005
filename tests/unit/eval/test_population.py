"""Batched population evaluation: several members per call give the per-member loop's rewards; low-rank noise
is an additive term that matches the materialised low-rank weights."""
import numpy as np
import pytest
import torch

from es_hpc import config
from es_hpc.eval import population
from es_hpc.comm import make
from es_hpc.config import ConfigError
from es_hpc.core.lowrank import LowRankParams
from es_hpc.core.params import select
from es_hpc.core.seeds import member_seeds
from es_hpc.eval.members import evaluate_members
from es_hpc.runtime.job import open_job
from es_hpc.runtime.timing import PhaseTimer

N, P = 6, 32


def _job(tiny_model_dir, *overrides):
    cfg = config.load(None, [f"model.path={tiny_model_dir}", "model.device=cpu", *overrides])
    return open_job(cfg, make("local"))


@pytest.fixture(scope="module")
def iso(tiny_model_dir):
    return _job(tiny_model_dir)


@pytest.fixture(scope="module")
def lowrank(tiny_model_dir):
    return _job(tiny_model_dir, "es.perturbation=lowrank", "es.rank=2")


@pytest.fixture(scope="module")
def lowrank_gemma(tmp_path_factory):
    """Gemma scales its embedding's output by sqrt(hidden): the low-rank term must be scaled alike."""
    from es_hpc.tools.tiny_model import build_random_model

    out = tmp_path_factory.mktemp("gemma") / "m"
    build_random_model(out, hidden=64, layers=2, family="gemma")
    return _job(out, "es.perturbation=lowrank", "es.rank=2")


def _rows(job):
    rows = job.task.rows("train")[:P]
    return rows, job.backend.encode([job.task.prompt(r) for r in rows])


@pytest.mark.parametrize("fast", [True, False])
def test_batched_isotropic_equals_per_member_loop(iso, fast):
    rows, batch = _rows(iso)
    seeds, signs = member_seeds(5, 0, N, antithetic=True)
    iso.evaluator.exact_fast_path = fast
    out = {}
    for per_call in (1, 4):  # 4: calls of 4 and 2 members
        iso.members_per_call = per_call
        assert iso.batched(P) == (per_call > 1)
        out[per_call] = evaluate_members(iso, seeds, signs, 1e-2, batch, rows, PhaseTimer())
    iso.members_per_call, iso.evaluator.exact_fast_path = 0, True
    np.testing.assert_array_equal(out[1][0], out[4][0])  # rewards
    np.testing.assert_array_equal(out[1][1], out[4][1])  # per-prompt bits
    assert out[1][2] == out[4][2]  # tokens
    assert len(set(out[1][0])) > 1  # the members really differ
    for w, m in zip(iso.perturbed.working, iso.perturbed.masters):
        assert torch.equal(w, m)  # restored
    assert all("forward" not in vars(mod) for mod in iso.backend.model.modules())  # unpatched


@pytest.mark.parametrize("name", ["lowrank", "lowrank_gemma"])
def test_lowrank_term_matches_materialised_weights(name, request):
    """Logits of 3 members in one call (base weights + low-rank term) vs each member's materialised weights."""
    lowrank = request.getfixturevalue(name)
    rows, batch = _rows(lowrank)
    model, perturbed = lowrank.backend.model, lowrank.perturbed
    seeds, scales = [11, 12, 13], [0.05, -0.05, 0.02]
    with torch.no_grad():
        base = model(**vars(batch)).logits
        with population.members(model, perturbed, seeds, scales):
            batched = model(**vars(batch.repeat(3))).logits
        for w, m in zip(perturbed.working, perturbed.masters):
            assert torch.equal(w, m)  # the base weights never changed
        for k, (seed, scale) in enumerate(zip(seeds, scales)):
            perturbed.perturb(seed, scale)
            try:
                expected = model(**vars(batch)).logits
            finally:
                perturbed.restore()
            got = batched[k * P:(k + 1) * P]
            assert (expected - base).abs().max() > 1e-2  # the perturbation moves the logits
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_lowrank_rewards_equal_materialised_loop(lowrank):
    rows, batch = _rows(lowrank)
    seeds, signs = member_seeds(9, 0, N, antithetic=False)
    got, _, _ = evaluate_members(lowrank, seeds, signs, 3e-3, batch, rows, PhaseTimer())
    ev = lowrank.evaluator
    expected = []
    for s in seeds:
        lowrank.perturbed.perturb(int(s), 3e-3)
        try:
            expected.append(ev.score(ev.completions(batch, rows)[0], rows).mean())
        finally:
            lowrank.perturbed.restore()
    np.testing.assert_array_equal(got, expected)


def _factor_reference(noise, seed, index, shape, rank):
    """The documented definition: one (out + in) x r draw, split into A and B."""
    ab = noise.draw(seed, index, (shape[0] + shape[1], rank))
    return ab[:shape[0]], ab[shape[0]:]


def test_lowrank_update_against_materialised_matrices():
    torch.manual_seed(0)
    named = [("w", torch.randn(40, 24)), ("b", torch.randn(40)), ("v", torch.randn(7, 5))]
    lr = LowRankParams(select(named, ["*"]), rank=3)
    before = [m.clone() for m in lr.masters]
    seeds, coef = np.array([3, 4, 5, 6], dtype=np.uint64), np.array([0.5, -1.0, 0.0, 2.0])
    lr.update(seeds, coef)
    for j, (name, t) in enumerate(named):
        expected = before[j].double()
        for s, c in zip(seeds, coef):
            if t.dim() == 2:
                a, b = _factor_reference(lr.noise, int(s), j, t.shape, 3)
                full = torch.stack([torch.outer(a[:, q], b[:, q]) for q in range(3)]).sum(0) / np.sqrt(3)
            else:
                full = lr.noise.draw(int(s), j, t.shape)
            expected += c * full.double()
        torch.testing.assert_close(lr.masters[j].double(), expected, rtol=0, atol=1e-5)
        assert torch.equal(named[j][1], lr.masters[j])  # the working tensor holds the new master


def test_lowrank_direction_has_unit_variance():
    lr = LowRankParams(select([("w", torch.zeros(300, 200))], ["*"]), rank=4)
    d = torch.stack([lr.direction(seed, 0) for seed in range(32)])  # one member's variance alone is noisy
    assert abs(d.var().item() - 1) < 0.05 and abs(d.mean().item()) < 0.01
    assert torch.linalg.matrix_rank(d[0]).item() == 4


def test_members_per_call_from_budget(iso):
    per_member = population.member_bytes(iso.perturbed)
    assert per_member == 4 * iso.perturbed.numel  # one fp32 copy of the perturbed tensors
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert population.members_per_call(0, 1024, 256, iso.perturbed, 64, gpu) == 4  # batch_size rows bound it
    assert population.members_per_call(0, 9, 4096, iso.perturbed, 64, gpu) == 9 * 2**20 // per_member  # memory does
    assert population.members_per_call(0, 1, 4096, iso.perturbed, 64, gpu) == 1  # too little memory: the loop
    assert population.members_per_call(0, 1024, 256, iso.perturbed, 64, cpu) == 1  # measured slower on the CPU
    assert population.members_per_call(3, 1, 4096, iso.perturbed, 64, cpu) == 3  # an explicit request wins


def test_lowrank_refuses_a_matrix_outside_linear_and_embedding():
    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3, 3))

        def forward(self, x):
            return x @ self.w
    model = Scale()
    lr = LowRankParams(select(list(model.named_parameters()), ["*"]), rank=1)
    with pytest.raises(ConfigError, match="es.perturbation: .*Scale owns matrix w"):
        with population.members(model, lr, [1], [0.1]):
            pass
