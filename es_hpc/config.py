"""Run configuration: dataclasses loaded from YAML, dotted command-line overrides, validated once."""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message names the field."""


@dataclass
class ModelConfig:
    path: str = "embedded:tiny"  # embedded:NAME (shipped), local directory or hub id (e.g. Qwen/Qwen2.5-1.5B-Instruct)
    dtype: str = "auto"  # auto (bfloat16 on a GPU, float32 on the CPU) | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda
    trust_remote_code: bool = False


@dataclass
class TaskConfig:
    name: str = "arithmetic"
    # passed to es_hpc.tasks.get(name, **options); dataset tasks: path (hub id or local file/folder), name,
    # splits ({train, val, test} -> dataset split, null: carved from train), val_size, test_size, split_seed
    options: dict = field(default_factory=dict)


@dataclass
class ESConfig:
    sigma: float = 3e-3
    alpha: float = 3e-3
    population: int = 30
    seed: int = 0
    shaping: str = "zscore"  # zscore | centered_rank | raw
    antithetic: bool = False
    update_form: str = "eq1"  # eq1: alpha/(N sigma) sum w eps (paper Eq. 1) | qiu: alpha/N sum w eps
    params: list = field(default_factory=lambda: ["*"])  # fnmatch patterns of perturbed parameter names
    master_device: str = "same"  # where the fp32 master copy lives: same (as the model) | cpu
    perturbation: str = "isotropic"  # isotropic: eps ~ N(0, I) (the paper) | lowrank: A B^T / sqrt(rank) per matrix
    rank: int = 4  # lowrank: rank r of each member's perturbation of a weight matrix


@dataclass
class GenerationConfig:
    backend: str = "transformers"  # transformers | vllm (imported lazily; see README)
    vllm_gpu_memory_utilization: float = 0.3  # vllm: share of GPU memory per engine (on CPU: sizes the KV cache)
    vllm_tensor_parallel_size: int = 1  # vllm: GPUs per rank's engine
    max_new_tokens: int = 0  # 0: the task's own hint
    batch_size: int = 256  # prompts per generate call
    exact_fast_path: bool = True  # score greedy decoding by one teacher-forced pass where the task has a reference
    members_per_call: int = 0  # population members evaluated in one batched call; 0: on a GPU as many as batch_size
    # rows and population_memory_mb allow, on the CPU 1; 1: one at a time (isotropic: perturbed in place)
    population_memory_mb: int = 1024  # budget for the stacked weight copies (isotropic) or factors of one call


@dataclass
class TrainConfig:
    iterations: int = 100
    prompts_per_iteration: int = 64
    eval_every: int = 10
    eval_split: str = "test"  # split of the held-out evaluation reported in the log
    eval_prompts: int = 0  # 0: the whole split
    keep_best: bool = False  # keep the checkpoint with the best validation reward (early stopping)
    select_split: str = "val"  # split that chooses the best checkpoint (never the reported one)
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    drift_every: int = 10  # re-measure the unperturbed reward after perturb/restore cycles
    checksum_every: int = 10  # compare a parameter checksum across ranks (0: never)
    threads: int = 0  # CPU threads per rank; 0: cores / ranks on this node


@dataclass
class DistConfig:
    backend: str = "auto"  # auto | local | torch | mpi


@dataclass
class LogConfig:
    file: str = "es_log.h5"


@dataclass
class CLSSConfig:
    """The `clss` probe job (Algorithm 2 step 1): R trajectories of T ES steps from a checkpoint per (alpha, N)."""
    populations: list = field(default_factory=lambda: [4, 8, 16, 32])  # population sizes N (noise kappa = sigma^2/N)
    alphas: list = field(default_factory=list)  # step sizes alpha; empty: [es.alpha]
    seeds: int = 8  # trajectories R per (alpha, N)
    steps: int = 20  # ES steps T per trajectory
    prompts_per_step: int = 64  # prompts per step (members and the unperturbed reward share the batch)
    baseline: bool = True  # subtract the unperturbed reward on the step's batch from the members' rewards
    fixed_prompts: bool = False  # every step uses one fixed pool of prompts_per_step prompts (tasks.fixed_pool with
    # es.seed): J is then a deterministic function of theta and the only noise is ES sampling, as in the OU model
    file: str = "clss.h5"  # HDF5 file in the output directory (layout: analysis/clss/SCHEMA.md)


@dataclass
class ProbeConfig:
    """The `probe` job (Appendix G): S batches of M candidates per sigma on a fixed pool of P prompts."""
    sigmas: list = field(default_factory=lambda: [3e-4, 1e-3, 3e-3])  # perturbation scales (G.4)
    batches: int = 2  # S independent perturbation batches per sigma (G.4, G.6)
    candidates: int = 240  # M candidates per batch
    pool_size: int = 320  # P prompts of the fixed evaluation pool (G.3)
    pool_seed: int = 0  # deterministic shuffle that picks the pool (G.3)
    split: str = "train"  # split the pool is drawn from (G.2 probes the training splits)
    base_seed: int = 1234  # candidate seeds: independent streams of this base seed per (sigma, batch) (G.4)
    drift_every: int = 24  # re-measure the unperturbed reward every K candidates per rank (0: never)
    file: str = "probe.h5"  # HDF5 file in the output directory (layout: analysis/best_of_n/SCHEMA.md)


@dataclass
class SLQConfig:
    """The `slq` job (Algorithm 3, Appendix G.10): Lanczos over a curvature operator of the model."""
    operator: str = "hvp"  # hvp: autograd Hessian of the cross-entropy surrogate | stein: Hessian of J_sigma
    probes: int = 8  # Hutchinson probe vectors, spread over ranks
    steps: int = 30  # Lanczos steps m per probe
    seed: int = 0  # probe vectors
    prompts: int = 64  # prompt set of the surrogate / of J in the Stein estimator (fixed pool, pool_seed)
    pool_seed: int = 0
    split: str = "train"
    candidates: int = 64  # M perturbations of the Stein estimator (sigma: es.sigma, seeds: slq.seed)
    dtype: str = "float64"  # precision of the matvecs (hvp: the model is cast to it; Lanczos is always float64)
    file: str = "slq.h5"  # HDF5 file in the output directory (layout: analysis/slq/SCHEMA.md)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    es: ESConfig = field(default_factory=ESConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    log: LogConfig = field(default_factory=LogConfig)
    clss: CLSSConfig = field(default_factory=CLSSConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    slq: SLQConfig = field(default_factory=SLQConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


CHOICES = {
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.device": ("auto", "cpu", "cuda"),
    "es.shaping": ("zscore", "centered_rank", "raw"),
    "es.update_form": ("eq1", "qiu"),
    "es.master_device": ("same", "cpu"),
    "es.perturbation": ("isotropic", "lowrank"),
    "train.eval_split": ("train", "val", "test"),
    "train.select_split": ("train", "val", "test"),
    "dist.backend": ("auto", "local", "torch", "mpi"),
    "generation.backend": ("transformers", "vllm"),
    "probe.split": ("train", "val", "test"),
    "slq.operator": ("hvp", "stein"),
    "slq.split": ("train", "val", "test"),
    "slq.dtype": ("float64", "float32"),
}


def _coerce(value, typ, name: str):
    """Check one YAML value against the field's annotated type (ints and 1e-3-style strings pass as floats)."""
    origin = typing.get_origin(typ) or typ
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if origin in (list, dict, str, bool, int, float):
        if isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
            return value
    raise ConfigError(f"{name}: expected {origin.__name__}, got {type(value).__name__} {value!r}")


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{name}: unknown key (known: {', '.join(sorted(names))})")
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _build(typ, value, f"{name}.")
        else:
            kwargs[key] = _coerce(value, typ, name)
    return cls(**kwargs)


def _set_dotted(data: dict, assignment: str) -> None:
    """Apply one `section.key=value` override; the value is parsed as YAML (so 1e-3, true, [a] work)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw)


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply dotted overrides and validate; raises ConfigError naming the field."""
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
    cfg = _build(Config, data, "")
    validate(cfg)
    return cfg


def from_json(text: str) -> Config:
    """Rebuild a Config from the JSON stored in a log or checkpoint."""
    return _build(Config, json.loads(text), "")


def _positive_float(value) -> bool:
    """True for a number > 0, or a string that reads as one (YAML 1.1 reads 1e-3 as a string)."""
    try:
        return float(value) > 0
    except ValueError:
        return False


def validate(cfg: Config) -> None:
    """Check values beyond their types; one ConfigError naming the first bad field."""
    for name, allowed in CHOICES.items():
        section, key = name.split(".")
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    bounds = [  # (field, value, strictly positive?)
        ("es.sigma", cfg.es.sigma, True), ("es.alpha", cfg.es.alpha, True), ("es.population", cfg.es.population, True),
        ("es.seed", cfg.es.seed, False),
        ("train.prompts_per_iteration", cfg.train.prompts_per_iteration, True),
        ("train.keep_checkpoints", cfg.train.keep_checkpoints, True),
        ("train.iterations", cfg.train.iterations, False), ("train.eval_every", cfg.train.eval_every, False),
        ("train.eval_prompts", cfg.train.eval_prompts, False),
        ("train.checkpoint_every", cfg.train.checkpoint_every, False),
        ("train.drift_every", cfg.train.drift_every, False),
        ("train.checksum_every", cfg.train.checksum_every, False), ("train.threads", cfg.train.threads, False),
        ("es.rank", cfg.es.rank, True),
        ("generation.batch_size", cfg.generation.batch_size, True),
        ("generation.members_per_call", cfg.generation.members_per_call, False),
        ("generation.population_memory_mb", cfg.generation.population_memory_mb, True),
        ("generation.max_new_tokens", cfg.generation.max_new_tokens, False),
        ("generation.vllm_gpu_memory_utilization", cfg.generation.vllm_gpu_memory_utilization, True),
        ("generation.vllm_tensor_parallel_size", cfg.generation.vllm_tensor_parallel_size, True),
        ("clss.seeds", cfg.clss.seeds, True), ("clss.steps", cfg.clss.steps, True),
        ("clss.prompts_per_step", cfg.clss.prompts_per_step, True),
        ("probe.batches", cfg.probe.batches, True), ("probe.candidates", cfg.probe.candidates, True),
        ("probe.pool_size", cfg.probe.pool_size, True), ("probe.pool_seed", cfg.probe.pool_seed, False),
        ("probe.base_seed", cfg.probe.base_seed, False), ("probe.drift_every", cfg.probe.drift_every, False),
        ("slq.probes", cfg.slq.probes, True), ("slq.steps", cfg.slq.steps, True), ("slq.seed", cfg.slq.seed, False),
        ("slq.prompts", cfg.slq.prompts, True), ("slq.pool_seed", cfg.slq.pool_seed, False),
        ("slq.candidates", cfg.slq.candidates, True),
    ]
    for name, value, strict in bounds:
        if not (value > 0 if strict else value >= 0):  # written so that NaN fails too
            raise ConfigError(f"{name}: must be {'>' if strict else '>='} 0, got {value!r}")
    if cfg.generation.vllm_gpu_memory_utilization > 1:
        raise ConfigError(f"generation.vllm_gpu_memory_utilization: must be <= 1, got {cfg.generation.vllm_gpu_memory_utilization!r}")
    if cfg.es.antithetic and cfg.es.population % 2:
        raise ConfigError(f"es.population: must be even with es.antithetic, got {cfg.es.population}")
    pops = cfg.clss.populations
    if not pops or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in pops):
        raise ConfigError(f"clss.populations: expected a non-empty list of integers > 0, got {pops!r}")
    if len(set(pops)) != len(pops):
        raise ConfigError(f"clss.populations: duplicate population sizes in {pops!r}")
    if cfg.es.antithetic and any(n % 2 for n in pops):
        raise ConfigError(f"clss.populations: must all be even with es.antithetic, got {pops!r}")
    alphas = cfg.clss.alphas
    if not all(isinstance(a, (int, float, str)) and not isinstance(a, bool) and _positive_float(a) for a in alphas):
        raise ConfigError(f"clss.alphas: expected a list of step sizes > 0 (empty: es.alpha), got {alphas!r}")
    if len(set(alphas)) != len(alphas):
        raise ConfigError(f"clss.alphas: duplicate step sizes in {alphas!r}")
    sig = cfg.probe.sigmas
    if not sig or not all(isinstance(a, (int, float, str)) and not isinstance(a, bool) and _positive_float(a) for a in sig):
        raise ConfigError(f"probe.sigmas: expected a non-empty list of perturbation scales > 0, got {sig!r}")
    if len(set(float(a) for a in sig)) != len(sig):
        raise ConfigError(f"probe.sigmas: duplicate values in {sig!r}")
    if not cfg.es.params or not all(isinstance(p, str) for p in cfg.es.params):
        raise ConfigError(f"es.params: expected a non-empty list of name patterns, got {cfg.es.params!r}")
    if cfg.train.keep_best and cfg.train.select_split == cfg.train.eval_split:
        raise ConfigError(
            f"train.select_split: must differ from train.eval_split ({cfg.train.eval_split!r}) "
            "so the reported reward is not the one that chose the checkpoint"
        )
    if not cfg.model.path:
        raise ConfigError("model.path: must name a local directory or a hub id")
