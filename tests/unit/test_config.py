"""The config contract: every field's type, choices and bounds are enforced with a one-line message naming the field
(parametrized over the declarations, so a new field is covered), typed lists are coerced, renamed keys name their new
key, each job checks the sections it reads, and stored configs (old names included) are read back."""
import dataclasses
import json
import re
import sys
import typing

import pytest
import yaml

from es_hpc import config, config_doc
from es_hpc.config import ConfigError

TINY = config.__file__.replace("es_hpc/config.py", "configs/tiny.yaml")
JOBS = [None, *config.JOB_SECTIONS]


def _fields():
    """(dotted name, dataclasses.Field, annotated type) of every field, read from the dataclasses."""
    for section, cls in typing.get_type_hints(config.Config).items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", f, hints[f.name]


def _out_of_bounds():
    """(field, value) pairs that each break one declared bound or choice (on the first element of a list)."""
    for name, f, typ in _fields():
        wrap = (lambda v: [v]) if typing.get_origin(typ) is list else (lambda v: v)
        element = typing.get_args(typ)[0] if typing.get_origin(typ) is list else typ
        if "gt" in f.metadata:
            yield name, wrap(f.metadata["gt"])
        if "ge" in f.metadata:
            yield name, wrap(f.metadata["ge"] - 1)
        if "le" in f.metadata:
            yield name, wrap(f.metadata["le"] + 1)
        if element is float and f.metadata.keys() & {"gt", "ge", "le"}:
            yield name, wrap(float("nan"))
        if typing.get_origin(typ) is typing.Literal:
            yield name, "not_a_choice"


WRONG = {int: ["abc", 2.5, True], float: ["abc", True], bool: ["yes please", 1], str: [5], dict: [[1]]}


def _on_bounds():
    """(field, value) pairs that sit on a declared `ge` or `le` bound: accepted (a `gt` bound is rejected)."""
    for name, f, typ in _fields():
        for key in ("ge", "le"):
            if key in f.metadata:
                yield name, [f.metadata[key]] if typing.get_origin(typ) is list else f.metadata[key]


def _wrong_types():
    """(field, value) pairs of the wrong type for every field (for a list: not a list, a wrong element)."""
    for name, _, typ in _fields():
        origin, args = typing.get_origin(typ), typing.get_args(typ)
        if origin is list:
            yield from ((name, v) for v in ("x", [WRONG[args[0]][0]]))
        elif origin is typing.Literal:
            yield name, 5
        else:
            yield from ((name, v) for v in WRONG[typ])


def _set(name: str, value) -> str:
    return f"{name}={json.dumps(value)}"  # JSON is YAML: the override parses back to `value`


OUT_OF_BOUNDS = list(_out_of_bounds())
ON_BOUNDS = list(_on_bounds())
WRONG_TYPES = list(_wrong_types())


def test_tiny_config_loads_and_overrides():
    cfg = config.load(TINY, ["es.sigma=1e-3", "train.iterations=5", "es.params=['*mlp*']"])
    assert cfg.es.sigma == 1e-3 and cfg.train.iterations == 5 and cfg.es.params == ["*mlp*"]
    assert config.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("job", JOBS)
def test_defaults_are_valid_for_every_job(job):
    assert config.load(None, job=job) == config.Config()


def test_every_bounded_or_choice_field_is_exercised():
    declared = {n for n, f, t in _fields()
                if f.metadata.keys() & {"gt", "ge", "le"} or typing.get_origin(t) is typing.Literal}
    assert declared == {name for name, _ in OUT_OF_BOUNDS}
    assert {"es.sigma", "es.shaping", "runtime.threads", "clss.trajectories", "probe.sigmas"} <= declared


@pytest.mark.parametrize("name, value", OUT_OF_BOUNDS, ids=[_set(*c) for c in OUT_OF_BOUNDS])
def test_bounds_and_choices_are_checked_for_the_jobs_that_read_the_section(name, value):
    override = _set(name, value)
    for job in JOBS:
        if job is None or name.split(".")[0] in config.JOB_SECTIONS[job]:
            with pytest.raises(ConfigError, match=rf"^{re.escape(name)}(\[0\])?: (must be|'not_a_choice' is not one of)"
                               ) as exc:
                config.load(None, [override], job=job)
            assert "\n" not in str(exc.value)
        else:
            config.load(None, [override], job=job)


@pytest.mark.parametrize("name, value", WRONG_TYPES, ids=[_set(*c) for c in WRONG_TYPES])
def test_types_are_checked_in_every_section_for_every_job(name, value):
    for job in JOBS:
        with pytest.raises(ConfigError, match=rf"^{re.escape(name)}(\[0\])?: expected ") as exc:
            config.load(None, [_set(name, value)], job=job)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name, value", ON_BOUNDS, ids=[_set(*c) for c in ON_BOUNDS])
def test_inclusive_bounds_accept_the_bound(name, value):
    section, key = name.split(".")
    assert getattr(getattr(config.load(None, [_set(name, value)]), section), key) == value


@pytest.mark.parametrize("override, message", [
    ("es.sigma=-1", "es.sigma: must be > 0, got -1.0"),
    ("es.seed=-1", "es.seed: must be >= 0, got -1"),
    ("generation.vllm_gpu_memory_utilization=1.5", "generation.vllm_gpu_memory_utilization: must be <= 1, got 1.5"),
    ("es.shaping=foo", "es.shaping: 'foo' is not one of zscore, centered_rank, raw"),
    ("probe.sigmas=[1e-3, abc]", "probe.sigmas[1]: expected float, got str 'abc'"),
    ("clss.populations=[4, true]", "clss.populations[1]: expected int, got bool True"),
    ("es.population=2.5", "es.population: expected int, got float 2.5"),
    ("clss.alphas=[0]", "clss.alphas[0]: must be > 0, got 0.0"),
])
def test_messages(override, message):
    with pytest.raises(ConfigError) as exc:
        config.load(None, [override])
    assert str(exc.value) == message


@pytest.mark.parametrize("override, field", [
    ("es.sigma=.nan", "es.sigma"),
    ("train.iterations=-1", "train.iterations"),
    ("es.bogus=1", "es.bogus"),
    ("bogus.key=1", "bogus"),
    ("es=1", "es"),
    ("train.keep_best=yes please", "train.keep_best"),
    ("model.dtype=int8", "model.dtype"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=rf"^{re.escape(field)}:"):
        config.load(TINY, [override])


def test_typed_lists_are_coerced_once_at_load(tmp_path):
    cfg = config.load(None, ["probe.sigmas=[3e-4, 1e-3, 1]", "clss.alphas=[5e-5, 2]"])
    assert cfg.probe.sigmas == [3e-4, 1e-3, 1.0] and cfg.clss.alphas == [5e-5, 2.0]
    assert all(type(v) is float for v in cfg.probe.sigmas + cfg.clss.alphas)
    path = tmp_path / "c.yaml"
    path.write_text("es:\n  sigma: 1e-3\nprobe:\n  sigmas: [1e-3, 3.0e-3]\n")
    assert yaml.safe_load(path.read_text())["probe"]["sigmas"][0] == "1e-3"  # what YAML 1.1 hands over
    cfg = config.load(path)
    assert cfg.es.sigma == 1e-3 and cfg.probe.sigmas == [1e-3, 3e-3]
    assert type(cfg.es.sigma) is float and config.load(None, ["es.sigma=1"]).es.sigma == 1.0


@pytest.mark.parametrize("old, new", config.RENAMED.items())
@pytest.mark.parametrize("job", JOBS)
def test_renamed_keys_name_the_new_key(tmp_path, old, new, job):
    section, key = old.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({section: {key: 2}}))
    for args in ((path, ()), (None, [f"{old}=2"])):
        with pytest.raises(ConfigError) as exc:
            config.load(*args, job=job)
        assert str(exc.value) == f"{old}: renamed to {new}"
    section, key = new.split(".")
    assert getattr(getattr(config.load(None, [f"{new}=2"], job=job), section), key) == 2


def test_job_sections_and_renames():
    common = ("model", "task", "es", "generation")
    assert {job: set(s) for job, s in config.JOB_SECTIONS.items()} == {
        "train": {*common, "train", "dist", "runtime", "log"}, "probe": {*common, "probe", "dist", "runtime"},
        "clss": {*common, "clss", "dist", "runtime"}, "slq": {*common, "slq", "dist", "runtime"},
        "bench": {*common, "train", "runtime"}}
    assert config.RENAMED == {"train.threads": "runtime.threads", "clss.seeds": "clss.trajectories"}


@pytest.mark.parametrize("overrides, fails_for, passes_for", [
    (["slq.dtype=float16"], ["slq"], ["train", "probe", "clss", "bench"]),
    (["train.keep_best=true", "train.eval_split=val"], ["train", "bench"], ["probe", "clss", "slq"]),
    (["es.antithetic=true", "clss.populations=[2, 3]"], ["clss"], ["train", "probe", "slq", "bench"]),
    (["probe.sigmas=[]"], ["probe"], ["train", "clss", "slq", "bench"]),
    (["log.file=5"], ["train", "probe", "clss", "slq", "bench"], []),  # a type error stops every job
    (["slq.bogus=1"], ["train", "probe", "clss", "slq", "bench"], []),  # so does an unknown key
])
def test_each_job_validates_the_sections_it_reads(overrides, fails_for, passes_for):
    assert sorted(fails_for + passes_for) == sorted(config.JOB_SECTIONS)
    for job in [None, *fails_for]:
        with pytest.raises(ConfigError):
            config.load(None, overrides, job=job)
    for job in passes_for:
        config.load(None, overrides, job=job)


@pytest.mark.parametrize("overrides, message", [
    (["es.antithetic=true", "es.population=5"], "es.population: must be even with es.antithetic"),
    (["es.antithetic=true", "clss.populations=[2, 3]"], "clss.populations: must all be even with es.antithetic"),
    (["clss.populations=[]"], "clss.populations: expected a non-empty list without duplicates"),
    (["clss.populations=[4, 4]"], "clss.populations: expected a non-empty list without duplicates"),
    (["clss.alphas=[1e-3, 0.001]"], r"clss.alphas: expected a list without duplicates"),
    (["probe.sigmas=[1e-3, 0.001]"], r"probe.sigmas: expected a non-empty list without duplicates, got \[0.001, 0."),
    (["probe.sigmas=[]"], "probe.sigmas: expected a non-empty list"),
    (["es.params=[]"], "es.params: expected a non-empty list"),
    (["train.keep_best=true", "train.select_split=test"], "train.select_split: must differ from train.eval_split"),
    (["model.path=''"], "model.path: must name"),
])
def test_cross_field_rules(overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        config.load(None, overrides)


def test_cross_field_rules_allow_what_they_should():
    cfg = config.load(None, ["clss.alphas=[]", "es.antithetic=true", "clss.populations=[2, 4]", "train.keep_best=true"])
    assert cfg.clss.alphas == [] and cfg.train.select_split != cfg.train.eval_split


def test_from_json_round_trips_and_reads_old_names():
    cfg = config.load(None, ["runtime.threads=3", "clss.trajectories=5", "probe.sigmas=[1e-3]"])
    assert config.from_json(cfg.to_json()) == cfg
    stored = json.loads(cfg.to_json())  # the layout older versions wrote
    stored["train"]["threads"] = stored.pop("runtime")["threads"]
    stored["clss"]["seeds"] = stored["clss"].pop("trajectories")
    stored["probe"]["sigmas"] = ["1e-3"]
    assert config.from_json(json.dumps(stored)) == cfg


def test_from_json_reads_what_a_job_accepted():
    cfg = config.load(None, ["slq.dtype=float16"], job="train")  # slq is not the train job's to check
    assert config.from_json(cfg.to_json()) == cfg


def test_describe_lists_every_field_with_type_default_and_help():
    rows = config_doc.describe()
    assert [r[0] for r in rows] == [n for n, _, _ in _fields()]
    defaults = dataclasses.asdict(config.Config())
    for name, typ, default, text in rows:
        section, key = name.split(".")
        assert json.loads(default) == defaults[section][key]
        assert typ and text and "\n" not in text, name
    assert dict((r[0], r[1]) for r in rows)["es.shaping"] == "zscore | centered_rank | raw"
    assert dict((r[0], r[1]) for r in rows)["generation.vllm_gpu_memory_utilization"] == "float (> 0, <= 1)"
    assert dict((r[0], r[1]) for r in rows)["clss.populations"] == "list[int] (each > 0)"


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="config: file not found"):
        config.load("/nonexistent.yaml")
    with pytest.raises(ConfigError, match="expected section.key=value"):
        config.load(TINY, ["es.sigma"])


@pytest.mark.parametrize("key", ["tensorboard", "wandb"])
def test_live_metrics_package_missing_is_one_line(monkeypatch, key):
    monkeypatch.setitem(sys.modules, key, None)  # as if not installed: import and find_spec see nothing
    with pytest.raises(ConfigError) as err:
        config.load(None, [f"log.{key}=true"], job="train")
    assert str(err.value) == f"log.{key}: the {key} package is not installed (pip install 'es_hpc[{key}]')"
    assert getattr(config.load(None, [f"log.{key}=true"], job="probe").log, key)  # probe does not read log
