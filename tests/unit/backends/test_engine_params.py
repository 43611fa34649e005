"""runtime.job.make_perturbed with a backend that keeps its parameters in an engine (params_in_engine): it asks
the backend for them (es.params, es.master_device), and low-rank noise, which such an engine cannot add, is a
one-line ConfigError naming es.perturbation. Without an engine: tests/vllm_backend runs the real one."""
import pytest

from es_hpc import config
from es_hpc.config import ConfigError
from es_hpc.runtime.job import make_perturbed


class EngineBackend:
    """The part of a params_in_engine backend that make_perturbed reads."""

    params_in_engine = True

    def engine_params(self, patterns, master_device):
        return ("engine", patterns, master_device)


def test_the_engine_provides_the_parameters():
    cfg = config.load(None, ["es.params=[model.norm.weight]", "es.master_device=cpu"])
    assert make_perturbed(cfg, EngineBackend()) == ("engine", ["model.norm.weight"], "cpu")


def test_lowrank_noise_is_a_one_line_error():
    cfg = config.load(None, ["es.perturbation=lowrank", "generation.backend=vllm"])
    with pytest.raises(ConfigError) as err:
        make_perturbed(cfg, EngineBackend())
    assert str(err.value).startswith("es.perturbation: lowrank") and "\n" not in str(err.value)
