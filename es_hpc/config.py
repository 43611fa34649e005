"""Run configuration: dataclasses read from YAML and dotted overrides; each field declares type, bounds and help."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import operator
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message names the field."""


BOUNDS = {"gt": (">", operator.gt), "ge": (">=", operator.ge), "le": ("<=", operator.le)}
Split = Literal["train", "val", "test"]


def option(default, help: str, *, gt=None, ge=None, le=None):
    """A dataclass field with its one-line help and bounds (on each element of a list) in its metadata."""
    meta = {"help": help, **{k: v for k, v in (("gt", gt), ("ge", ge), ("le", le)) if v is not None}}
    if isinstance(default, (list, dict)):  # a fresh copy per instance
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    path: str = option("embedded:tiny", "embedded:NAME (shipped), local dir or hub id, e.g. Qwen/Qwen2.5-1.5B-Instruct")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = option("auto", "auto: bfloat16 on GPUs, float32 on CPUs")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "auto: this rank's GPU when there is one, else the CPU")
    trust_remote_code: bool = option(False, "let transformers run model code shipped with the checkpoint")


@dataclass
class TaskConfig:
    name: str = option("arithmetic", "a built-in task (arithmetic, gsm8k, arc_challenge, winogrande, countdown, "
                       "prompt_answer), one installed in the es_hpc.tasks entry-point group, or package.module:Class")
    options: dict = option({}, "es_hpc.tasks.get(name, **options); dataset tasks: path (hub id, local file/folder),"
                           " name, splits ({train, val, test} -> split, null: carved from train), val_size, test_size,"
                           " split_seed")
    reward_timeout: float = option(10.0, "seconds one completion's reward may run where it runs in the reward worker "
                                   "(tasks from outside es_hpc, prompt_answer's regex); past it, it scores 0", gt=0)


@dataclass
class ESConfig:
    sigma: float = option(3e-3, "perturbation scale sigma: members are theta + sigma eps", gt=0)
    alpha: float = option(3e-3, "step size alpha of the update", gt=0)
    population: int = option(30, "members N per iteration", gt=0)
    seed: int = option(0, "base seed of the members' perturbations and of the prompt draws", ge=0)
    shaping: Literal["zscore", "centered_rank", "raw"] = option("zscore", "transform of the members' rewards")
    antithetic: bool = option(False, "members in pairs theta +- sigma eps that share a seed")
    update_form: Literal["eq1", "qiu"] = option("eq1", "eq1: alpha/(N sigma) sum w eps (Eq. 1); qiu: alpha/N sum w eps")
    params: list[str] = option(["*"], "fnmatch patterns of perturbed parameter names")
    master_device: Literal["same", "cpu"] = option("same", "where the fp32 master copy lives: same as the model or cpu")
    perturbation: Literal["isotropic", "lowrank"] = option(
        "isotropic", "isotropic: eps ~ N(0, I) (the paper); lowrank: A B^T / sqrt(rank) per weight matrix")
    rank: int = option(4, "lowrank: rank r of each member's perturbation of a weight matrix", gt=0)


@dataclass
class GenerationConfig:
    backend: Literal["transformers", "vllm"] = option("transformers", "vllm is imported lazily (see README)")
    vllm_gpu_memory_utilization: float = option(
        0.3, "vllm: share of GPU memory per engine (on CPU: sizes the KV cache)", gt=0, le=1)
    vllm_tensor_parallel_size: int = option(1, "vllm: GPUs per rank's engine", gt=0)
    max_new_tokens: int = option(0, "tokens generated per prompt; 0: the task's own hint", ge=0)
    batch_size: int = option(256, "prompts per generate call", gt=0)
    exact_fast_path: bool = option(True, "score greedy decoding by one teacher-forced pass if the task has a reference")
    members_per_call: int = option(0, "population members evaluated in one batched call; 0: on a GPU as many as "
                                   "batch_size rows and population_memory_mb allow, on the CPU 1; 1: one at a time "
                                   "(isotropic: perturbed in place)", ge=0)
    population_memory_mb: int = option(1024, "budget for stacked weight copies (isotropic) or factors of a call", gt=0)


@dataclass
class TrainConfig:
    iterations: int = option(100, "ES iterations", ge=0)
    prompts_per_iteration: int = option(64, "prompts drawn per iteration, shared by every member", gt=0)
    eval_every: int = option(10, "evaluate every K iterations and at the end (0: never)", ge=0)
    eval_split: Split = option("test", "split of the held-out evaluation reported in the log")
    eval_prompts: int = option(0, "prompts per evaluation; 0: the whole split", ge=0)
    keep_best: bool = option(False, "keep the checkpoint with the best validation reward (early stopping)")
    select_split: Split = option("val", "split that chooses the best checkpoint (never the reported one)")
    checkpoint_every: int = option(50, "checkpoint every K iterations and at the end (0: only at the end)", ge=0)
    keep_checkpoints: int = option(2, "periodic checkpoints kept on disk, the newest", gt=0)
    drift_every: int = option(10, "re-measure the unperturbed reward after perturb/restore cycles, every K iterations "
                              "(0: never)", ge=0)
    checksum_every: int = option(10, "compare a parameter checksum across ranks every K iterations (0: never)", ge=0)


@dataclass
class DistConfig:
    backend: Literal["auto", "local", "torch", "mpi"] = option("auto", "auto: from the launcher's environment")


@dataclass
class RuntimeConfig:
    threads: int = option(0, "CPU threads per rank; 0: this node's cores / its ranks", ge=0)


@dataclass
class LogConfig:
    file: str = option("es_log.h5", "HDF5 log file in the output directory")
    tensorboard: bool = option(False, "rank 0 also writes the log's scalars as TensorBoard event files to "
                               "OUT/tensorboard (pip install 'es_hpc[tensorboard]')")
    wandb: bool = option(False, "rank 0 also logs the scalars to a Weights & Biases run in OUT/wandb "
                         "(pip install 'es_hpc[wandb]')")
    wandb_mode: Literal["offline", "online"] = option(
        "offline", "offline: a local run directory (air-gapped nodes; upload later with wandb sync); online: streamed")
    wandb_project: str = option("es_hpc", "W&B project of the run (its name: the --out directory's name)")


@dataclass
class CLSSConfig:
    """The `clss` probe job (Algorithm 2 step 1): R trajectories of T ES steps from a checkpoint per (alpha, N)."""
    populations: list[int] = option([4, 8, 16, 32], "population sizes N (noise kappa = sigma^2/N)", gt=0)
    alphas: list[float] = option([], "step sizes alpha; empty: [es.alpha]", gt=0)
    trajectories: int = option(8, "trajectories R per (alpha, N)", gt=0)
    steps: int = option(20, "ES steps T per trajectory", gt=0)
    prompts_per_step: int = option(64, "prompts per step (members and the unperturbed reward share the batch)", gt=0)
    baseline: bool = option(True, "subtract the unperturbed reward on the step's batch from the members' rewards")
    fixed_prompts: bool = option(False, "every step uses one fixed pool of prompts_per_step prompts (tasks.fixed_pool "
                                 "with es.seed): J is then a deterministic function of theta and the only noise is ES "
                                 "sampling, as in the OU model")
    file: str = option("clss.h5", "HDF5 file in the output directory (layout: analysis/clss/SCHEMA.md)")


@dataclass
class ProbeConfig:
    """The `probe` job (Appendix G): S batches of M candidates per sigma on a fixed pool of P prompts."""
    sigmas: list[float] = option([3e-4, 1e-3, 3e-3], "perturbation scales (G.4)", gt=0)
    batches: int = option(2, "S independent perturbation batches per sigma (G.4, G.6)", gt=0)
    candidates: int = option(240, "M candidates per batch", gt=0)
    pool_size: int = option(320, "P prompts of the fixed evaluation pool (G.3)", gt=0)
    pool_seed: int = option(0, "deterministic shuffle that picks the pool (G.3)", ge=0)
    split: Split = option("train", "split the pool is drawn from (G.2 probes the training splits)")
    base_seed: int = option(1234, "candidate seeds: independent streams of this base seed per (sigma, batch) (G.4)",
                            ge=0)
    drift_every: int = option(24, "re-measure the unperturbed reward every K candidates per rank (0: never)", ge=0)
    antithetic: bool = option(False, "also evaluate every candidate at theta - sigma u (curvature moments)")
    file: str = option("probe.h5", "HDF5 file in the output directory (layout: analysis/best_of_n/SCHEMA.md)")


@dataclass
class SLQConfig:
    """The `slq` job (Algorithm 3, Appendix G.10): Lanczos over a curvature operator of the model."""
    operator: Literal["hvp", "stein"] = option(
        "hvp", "hvp: autograd Hessian of the cross-entropy surrogate; stein: Hessian of J_sigma")
    probes: int = option(8, "Hutchinson probe vectors, spread over ranks", gt=0)
    steps: int = option(30, "Lanczos steps m per probe", gt=0)
    seed: int = option(0, "seed of the probe vectors and of the Stein candidates", ge=0)
    prompts: int = option(64, "prompt set of the surrogate / of J in the Stein estimator (fixed pool, pool_seed)", gt=0)
    pool_seed: int = option(0, "deterministic shuffle that picks the prompt pool", ge=0)
    split: Split = option("train", "split the prompt pool is drawn from")
    candidates: int = option(64, "M perturbations of the Stein estimator (sigma: es.sigma, seeds: slq.seed)", gt=0)
    null_permutations: int = option(64, "stein: permutations of dR among candidates for the null spectra", ge=0)
    dtype: Literal["float64", "float32"] = option(
        "float64", "precision of the matvecs (hvp: the model is cast to it; Lanczos is always float64)")
    file: str = option("slq.h5", "HDF5 file in the output directory (layout: analysis/slq/SCHEMA.md)")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    es: ESConfig = field(default_factory=ESConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    log: LogConfig = field(default_factory=LogConfig)
    clss: CLSSConfig = field(default_factory=CLSSConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    slq: SLQConfig = field(default_factory=SLQConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


_COMMON = ("model", "task", "es", "generation")  # read by every job: model, task, perturbations, decoding
JOB_SECTIONS = {  # the sections each job reads: the ones load(..., job=) validates
    "train": (*_COMMON, "train", "dist", "runtime", "log"), "probe": (*_COMMON, "probe", "dist", "runtime"),
    "clss": (*_COMMON, "clss", "dist", "runtime"), "slq": (*_COMMON, "slq", "dist", "runtime"),
    "bench": (*_COMMON, "train", "runtime")}
RENAMED = {"train.threads": "runtime.threads", "clss.seeds": "clss.trajectories"}  # old dotted name: new one


def _coerce(value, typ, name: str, meta=None):
    """`value` as `typ` (ints and 1e-3-style strings pass as floats, bools never as ints); with `meta`, checks its
    choices and bounds (the field's metadata) too."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is list and isinstance(value, list):
        return [_coerce(v, args[0], f"{name}[{i}]", meta) for i, v in enumerate(value)]
    want = type(args[0]) if origin is Literal else origin or typ
    if want is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError, OverflowError):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
        text = f"list[{args[0].__name__}]" if origin is list else want.__name__
        raise ConfigError(f"{name}: expected {text}, got {type(value).__name__} {value!r}")
    if meta is not None and origin is Literal and value not in args:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(args)}")
    for key, (text, holds) in BOUNDS.items():
        if meta is not None and key in meta and not holds(value, meta[key]):  # false for NaN: NaN fails
            raise ConfigError(f"{name}: must be {text} {meta[key]}, got {value!r}")
    return value


def _build(cls, data, prefix: str, checked=()):
    """Dataclass `cls` from a mapping: values coerced, choices and bounds checked in the sections `checked` names."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields, hints = {f.name: f for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name in RENAMED:
            raise ConfigError(f"{name}: renamed to {RENAMED[name]}")
        if key not in fields:
            raise ConfigError(f"{name}: unknown key (known: {', '.join(fields)})")
        meta = fields[key].metadata if name.split(".")[0] in checked else None
        kwargs[key] = (_build(hints[key], value, f"{name}.", checked) if dataclasses.is_dataclass(hints[key])
                       else _coerce(value, hints[key], name, meta))
    return cls(**kwargs)


def _check_rules(cfg: Config, sections) -> None:
    """Cross-field rules, each checked with the section it is about."""
    es, clss = cfg.es, cfg.clss
    for key in ("tensorboard", "wandb"):  # optional packages, needed only when asked for
        if "log" in sections and getattr(cfg.log, key) and importlib.util.find_spec(key) is None:
            raise ConfigError(f"log.{key}: the {key} package is not installed (pip install 'es_hpc[{key}]')")
    if "model" in sections and not cfg.model.path:
        raise ConfigError("model.path: must name a local directory or a hub id")
    if "es" in sections and es.antithetic and es.population % 2:
        raise ConfigError(f"es.population: must be even with es.antithetic, got {es.population}")
    if "es" in sections and not es.params:
        raise ConfigError("es.params: expected a non-empty list of name patterns")
    if "train" in sections and cfg.train.keep_best and cfg.train.select_split == cfg.train.eval_split:
        raise ConfigError(f"train.select_split: must differ from train.eval_split ({cfg.train.eval_split!r}) "
                          "so the reported reward is not the one that chose the checkpoint")
    if "clss" in sections and es.antithetic and any(n % 2 for n in clss.populations):
        raise ConfigError(f"clss.populations: must all be even with es.antithetic, got {clss.populations!r}")
    for name, values, may_be_empty in (("clss.populations", clss.populations, False),  # empty alphas: [es.alpha]
                                       ("clss.alphas", clss.alphas, True), ("probe.sigmas", cfg.probe.sigmas, False)):
        if name.split(".")[0] in sections and (len(set(values)) != len(values) or not (values or may_be_empty)):
            raise ConfigError(f"{name}: expected a {'' if may_be_empty else 'non-empty '}list without duplicates, "
                              f"got {values!r}")


def _set_dotted(node: dict, assignment: str) -> None:
    """Apply one `section.key=value` override to the config tree; the value is parsed as YAML (1e-3, true, [a])."""
    path, sep, raw = assignment.partition("=")
    if not sep:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    *sections, key = path.strip().split(".")
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {section} is not a section")
    node[key] = yaml.safe_load(raw)


def load(path: str | Path | None, overrides: typing.Iterable[str] = (), job: str | None = None) -> Config:
    """Read a YAML config and apply dotted overrides; every value is coerced to its type, and the choices, bounds and
    cross-field rules of the sections `job` uses (all for None) are checked. Errors are one-line ConfigErrors."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config: file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config: {p} is not valid YAML ({str(exc).splitlines()[0]})") from None
    for assignment in overrides:
        _set_dotted(data, assignment)
    sections = JOB_SECTIONS[job] if job else [f.name for f in dataclasses.fields(Config)]
    cfg = _build(Config, data, "", sections)
    _check_rules(cfg, sections)
    return cfg


def from_json(text: str) -> Config:
    """Rebuild a Config from the JSON stored in a log or checkpoint, reading renamed keys' old names as the new."""
    data = json.loads(text)
    for old, new in RENAMED.items():
        (section, key), (new_section, new_key) = old.split("."), new.split(".")
        if isinstance(data.get(section), dict) and key in data[section]:
            data.setdefault(new_section, {})[new_key] = data[section].pop(key)
    return _build(Config, data, "")

