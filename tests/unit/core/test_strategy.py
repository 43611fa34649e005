"""The ES step as ask/tell (es_hpc.core.strategy) against a dense float64 reference of Eq. 1."""
import dataclasses

import numpy as np
import pytest
import torch

from es_hpc.core.params import PerturbedParams
from es_hpc.core.seeds import member_seeds
from es_hpc.core.shaping import shape
from es_hpc.core.strategy import ES


def params(seed: int = 0) -> tuple[PerturbedParams, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(7, 5, generator=gen), torch.randn(11, generator=gen)]
    return PerturbedParams([(i, f"p{i}", t) for i, t in enumerate(tensors)]), tensors


@pytest.mark.parametrize("antithetic", [False, True])
def test_ask_is_the_iterations_member_seeds(antithetic):
    es = ES(seed=3, population=6, sigma=0.1, alpha=0.01, antithetic=antithetic)
    for t in (0, 5):
        seeds, signs = es.ask(t)
        want_seeds, want_signs = member_seeds(3, t, 6, antithetic)
        assert np.array_equal(seeds, want_seeds) and np.array_equal(signs, want_signs)


@pytest.mark.parametrize("update_form, step", [("eq1", lambda a, n, s: a / (n * s)), ("qiu", lambda a, n, s: a / n)])
@pytest.mark.parametrize("shaping", ["zscore", "centered_rank", "raw"])
def test_tell_is_eq1_in_float64(update_form, step, shaping):
    es = ES(seed=1, population=8, sigma=0.02, alpha=0.05, shaping=shaping, update_form=update_form, antithetic=True)
    pp, tensors = params()
    before = [t.double().clone() for t in pp.masters]
    seeds, signs = es.ask(4)
    rewards = np.linspace(0.0, 1.0, 8) ** 2
    coef = es.tell(pp, seeds, signs, rewards)
    w = shape(rewards, shaping) * signs
    for j, (t, b) in enumerate(zip(tensors, before)):
        eps = [pp.noise.draw(int(s), j, b.shape).double() for s in seeds]
        want = b + step(es.alpha, es.population, es.sigma) * sum(float(wk) * e for wk, e in zip(w, eps))
        assert torch.allclose(t.double(), want, rtol=1e-6, atol=1e-7)
        assert torch.equal(pp.masters[j], t)  # the working tensor is the master after tell
    assert np.allclose(coef, step(es.alpha, es.population, es.sigma) * w)


def test_from_config_takes_the_es_section_and_changes():
    section = type("Section", (), dict(seed=0, population=30, sigma=3e-3, alpha=1e-3, shaping="raw",
                                        update_form="qiu", antithetic=False, params=["*"]))()
    es = ES.from_config(section, population=4, seed=9)
    assert dataclasses.asdict(es) == dict(seed=9, population=4, sigma=3e-3, alpha=1e-3, shaping="raw",
                                          update_form="qiu", antithetic=False)


def test_tell_refuses_non_finite_rewards():
    es = ES(seed=0, population=3, sigma=0.1, alpha=0.1)
    pp, _ = params()
    seeds, signs = es.ask(0)
    with pytest.raises(FloatingPointError, match="member 1"):
        es.tell(pp, seeds, signs, np.array([0.0, np.nan, 1.0]))
