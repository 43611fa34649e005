import pytest

from es_hpc import config
from es_hpc.config import ConfigError

TINY = config.__file__.replace("es_hpc/config.py", "configs/tiny.yaml")


def test_tiny_config_loads_and_overrides():
    cfg = config.load(TINY, ["es.sigma=1e-3", "train.iterations=5", "es.params=['*mlp*']"])
    assert cfg.es.sigma == 1e-3 and cfg.train.iterations == 5 and cfg.es.params == ["*mlp*"]
    assert config.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("override, field", [
    ("es.sigma=0", "es.sigma"),
    ("es.sigma=-1e-3", "es.sigma"),
    ("es.population=0", "es.population"),
    ("es.sigma=.nan", "es.sigma"),
    ("train.iterations=-1", "train.iterations"),
    ("es.bogus=1", "es.bogus"),
    ("bogus.key=1", "bogus"),
    ("es.population=abc", "es.population"),
    ("es.population=2.5", "es.population"),
    ("train.keep_best=yes please", "train.keep_best"),
    ("es.shaping=softmax", "es.shaping"),
    ("model.dtype=int8", "model.dtype"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=rf"^{field}"):
        config.load(TINY, [override])


def test_odd_population_with_antithetic():
    with pytest.raises(ConfigError, match="es.population: must be even"):
        config.load(TINY, ["es.antithetic=true", "es.population=5"])


def test_int_accepted_for_float():
    assert config.load(TINY, ["es.sigma=1"]).es.sigma == 1.0


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="config: file not found"):
        config.load("/nonexistent.yaml")
    with pytest.raises(ConfigError, match="expected section.key=value"):
        config.load(TINY, ["es.sigma"])
