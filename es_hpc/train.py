"""The train job: the ES loop of Algorithm 1 over ranks, with held-out evaluation, HDF5 log and checkpoints."""
from __future__ import annotations

import os
import platform
import signal
import subprocess
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers

from . import __version__, checkpoint, comm as comm_mod, population, tasks, teacher_forced
from .backends.hf import HFBackend, pick_device
from .backends.vllm import VLLMBackend
from .config import Config, ConfigError
from .core import params as params_mod
from .core.lowrank import LowRankParams
from .core.seeds import member_seeds, prompt_rng
from .core.update import coefficients
from .errors import Diverged, Preempted
from .h5log import H5Log

class StopRequest:
    """Remembers SIGTERM or SIGUSR1 (a scheduler's warning) until the next iteration boundary."""

    def __init__(self):
        self.signal = 0
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.signal = signum


def check_consistency(comm, perturbed, iteration: int) -> None:
    """All-reduce every rank's parameter checksum (one slot each); stop naming the ranks that differ."""
    sums = np.zeros(comm.world_size)
    sums[comm.rank] = perturbed.checksum()
    sums = comm.allreduce_sum(sums)
    bad = np.flatnonzero(sums != sums[0]).tolist()
    if bad:
        raise Diverged(f"parameter checksum of rank(s) {bad} differs from rank 0's at iteration {iteration}")


PHASES = ("perturb", "generate", "score", "restore", "exchange", "update")


class PhaseTimer:
    """Seconds spent per phase of one iteration: `with timer("generate"): ...` adds to that phase. The phases are
    fixed up front (the log declares a column for each), PHASES unless a job times more, as the bench's "log"."""

    def __init__(self, phases: tuple[str, ...] = PHASES):
        self.seconds = dict.fromkeys(phases, 0.0)

    @contextmanager
    def __call__(self, phase: str):
        if phase not in self.seconds:
            raise KeyError(f"PhaseTimer: {phase!r} is not one of its phases {tuple(self.seconds)}")
        start = time.perf_counter()
        yield
        self.seconds[phase] += time.perf_counter() - start


def git_commit() -> str:
    """The commit of the es_hpc checkout (or "unknown" outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def set_threads(cfg: Config, comm) -> int:
    """CPU threads per rank: the configured number, or this node's cores shared among its ranks."""
    n = cfg.train.threads or max(1, len(os.sched_getaffinity(0)) // comm.local_world_size)
    torch.set_num_threads(n)
    return n


class Evaluator:
    """Mean reward of the current weights on a list of rows, rows sharded over ranks, sums all-reduced."""

    def __init__(self, task, backend: HFBackend, comm, max_new_tokens: int, batch_size: int,
                 exact_fast_path: bool = False, dtype: str = "float32"):
        self.task, self.backend, self.comm = task, backend, comm
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.exact_fast_path = exact_fast_path
        self.margin = teacher_forced.MARGIN[dtype]  # the backend's resolved dtype: how close logits may tie

    def generate(self, batch, batch_size: int = 0) -> tuple[list[str], int]:
        return self.backend.generate(batch, self.max_new_tokens, batch_size or self.batch_size)

    def completions(self, batch, rows: list[dict], batch_size: int = 0) -> tuple[list[str], int]:
        """Greedy completions of `rows` (encoded as `batch`), or texts with the same rewards: by one teacher-forced
        pass where the task declares reference completions (exact-answer fast path), generating only if some row
        stays undecided. Tokens: generated, or on the fast path teacher-forced up to the deciding position.
        batch_size (rows per call) overrides generation.batch_size; a batched population call passes all its rows."""
        batch_size = batch_size or self.batch_size
        refs = [self.task.reference_completion(r) for r in rows] if self.exact_fast_path else [None]
        if None in refs or not hasattr(self.backend, "teacher_forced"):
            return self.generate(batch, batch_size)
        texts, tokens = teacher_forced.greedy_completions(self.backend, batch, refs, self.max_new_tokens,
                                                          batch_size, self.margin)
        if None in texts:  # the whole batch, so that these rows see exactly what generate-then-compare sees
            generated, _ = self.generate(batch, batch_size)
            texts = [g if t is None else t for t, g in zip(texts, generated)]
        return texts, tokens

    def score(self, texts: list[str], rows: list[dict]) -> np.ndarray:
        return np.array([self.task.reward(c, r) for c, r in zip(texts, rows)], dtype=np.float64)

    def local_rewards(self, rows: list[dict], batch=None) -> np.ndarray:
        """This process's per-row rewards of `rows` (encoded once as `batch` when given)."""
        if not rows:
            return np.zeros(0)
        batch = batch or self.backend.encode([self.task.prompt(r) for r in rows])
        return self.score(self.completions(batch, rows)[0], rows)

    def mean(self, rows: list[dict]) -> float:
        mine = [rows[i] for i in self.comm.owned(len(rows))]
        r = self.local_rewards(mine)
        total, count = self.comm.allreduce_sum(np.array([r.sum(), len(r)]))
        return float(total / count)


@dataclass
class Job:
    """What every ES job holds on a rank: the task, the model backend, its perturbed parameters, an evaluator."""

    comm: object
    task: object
    backend: HFBackend
    perturbed: params_mod.PerturbedParams
    evaluator: Evaluator
    threads: int
    members_per_call: int = 1  # generation.members_per_call as configured (0: auto)
    population_memory_mb: int = 1024

    def batch_members(self, prompts: int) -> int:
        """Members evaluated per call on `prompts` prompts: 1 unless the backend holds the model in this process
        (transformers) and generation.members_per_call, or its auto rule (population.members_per_call), says more."""
        if not hasattr(self.backend, "model"):
            return 1
        return population.members_per_call(self.members_per_call, self.population_memory_mb,
                                           self.evaluator.batch_size, self.perturbed, prompts, self.backend.device)

    def batched(self, prompts: int) -> bool:
        """Whether members go through population.members (several per call, or low-rank noise added in the forward
        pass) rather than being perturbed in place one at a time."""
        return hasattr(self.backend, "model") and (
            isinstance(self.perturbed, LowRankParams) or self.batch_members(prompts) > 1)


def open_job(cfg: Config, comm) -> Job:
    """Set threads, build the task, load the model (`model.path`) and wrap the parameters ES perturbs."""
    threads = set_threads(cfg, comm)
    task = tasks.get(cfg.task.name, **cfg.task.options)
    backend = (VLLMBackend(cfg.model, cfg.generation) if cfg.generation.backend == "vllm"
               else HFBackend(cfg.model, pick_device(cfg.model.device, comm.local_rank)))
    perturbed = make_perturbed(cfg, backend)
    evaluator = Evaluator(task, backend, comm, cfg.generation.max_new_tokens or task.max_new_tokens,
                          cfg.generation.batch_size, cfg.generation.exact_fast_path, backend.dtype)
    return Job(comm, task, backend, perturbed, evaluator, threads, cfg.generation.members_per_call,
               cfg.generation.population_memory_mb)


def make_perturbed(cfg: Config, backend) -> params_mod.PerturbedParams:
    """The parameters ES perturbs (es.params), with isotropic or low-rank noise (es.perturbation)."""
    selected = params_mod.select(backend.named_parameters(), cfg.es.params)
    on_change = getattr(backend, "on_change", None)
    if cfg.es.perturbation == "lowrank":
        return LowRankParams(selected, cfg.es.rank, cfg.es.master_device, on_change)
    return params_mod.PerturbedParams(selected, cfg.es.master_device, on_change)


def split_rows(task, split: str, size: int, field: str) -> list[dict]:
    """The rows of `split`, or a ConfigError naming `field` when a job asks for more than the split has."""
    rows = task.rows(split)
    if size > len(rows):
        raise ConfigError(f"{field}: {size} exceeds the {len(rows)} rows of the {split} split")
    return rows


def provenance(cfg: Config, job: Job) -> dict:
    """Root attributes of a job's HDF5 file: the config, versions, commit and scale."""
    return {
        "config": cfg.to_json(), "es_hpc_version": __version__, "torch_version": torch.__version__,
        "transformers_version": transformers.__version__, "python_version": platform.python_version(),
        "git_commit": git_commit(), "world_size": job.comm.world_size, "comm": job.comm.name,
        "backend": cfg.generation.backend, "model": cfg.model.path, "dtype": job.backend.dtype,
        "task": cfg.task.name,
        "perturbed_parameters": job.perturbed.numel, "threads_per_rank": job.threads,
        "perturbation": cfg.es.perturbation, "noise": job.perturbed.noise.implementation,
    }


def log_tables(cfg: Config) -> dict:
    """The appended tables of the train log (README, "HDF5 log schema"): each column's row shape and dtype, fixed
    by the config (eval/ only with train.eval_every, eval/select_reward only with train.keep_best)."""
    n, p = cfg.es.population, cfg.train.prompts_per_iteration
    train = {"iteration": ((), np.int64), "seeds": ((n,), np.uint64), "signs": ((n,), np.int8),
             "rewards": ((n,), np.float32), "sigma": ((), np.float32), "alpha": ((), np.float32),
             "tokens": ((), np.int64), "prompt_ids": ((p,), np.int64), "prompt_bits": ((n, (p + 7) // 8), np.uint8),
             "comm_bytes": ((), np.int64), "baseline_drift": ((), np.float32), "wall": ((), np.float64),
             **{f"time/{phase}": ((), np.float32) for phase in PHASES}}
    if not cfg.train.eval_every:
        return {"train": train}
    select = {"select_reward": ((), np.float32)} if cfg.train.keep_best else {}
    return {"train": train, "eval": {"iteration": ((), np.int64), "reward": ((), np.float32), **select,
                                     "wall": ((), np.float64), "seconds": ((), np.float32)}}


def checkpoint_job_file(cfg: Config, job: Job, path: Path, checkpoint_dir: Path, cleanup: ExitStack, layout):
    """The HDF5 file of a job run from a checkpoint (clss, slq): rank 0 creates it with the provenance, the
    checkpoint and `layout(f)`, its every dataset, closed by `cleanup`; other ranks get None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if job.comm.rank != 0:
        return None
    log = H5Log(path, dict(provenance(cfg, job), checkpoint=str(checkpoint_dir)), {}, layout)
    cleanup.callback(log.close)
    return log.f


@contextmanager
def perturbed_members(job: Job, seeds, scales, timer: PhaseTimer, batched: bool):
    """The members (seed, scale) in the model for the block: one member perturbed in place, or several in a batched
    population call (population.members); restored afterwards, timed as perturb and restore."""
    with ExitStack() as undo:
        with timer("perturb"):
            if batched:
                undo.enter_context(population.members(job.backend.model, job.perturbed, seeds, scales))
            else:
                job.perturbed.perturb(int(seeds[0]), float(scales[0]))
                undo.callback(job.perturbed.restore)
        try:
            yield
        finally:
            with timer("restore"):
                undo.close()


def evaluate_members(job: Job, seeds, signs, sigma: float, batch, rows, timer: PhaseTimer):
    """This rank's members (k % W == rank), job.batch_members(P) per call: perturb, generate, score, restore.
    Returns the length-N reward vector (zeros for other ranks' members), their packed per-prompt bits, and the
    tokens generated."""
    n, p = len(seeds), len(rows)
    rewards, tokens = np.zeros(n), 0
    bits = np.zeros((n, (p + 7) // 8), dtype=np.uint8)  # per-prompt 0/1 rewards, packed
    owned = list(job.comm.owned(n))
    per_call, batched = job.batch_members(p), job.batched(p)
    for s in range(0, len(owned), per_call):
        chunk = owned[s:s + per_call]
        chunk_rows = rows * len(chunk)  # member-major, as population.members expects
        with perturbed_members(job, seeds[chunk], signs[chunk].astype(np.float64) * sigma, timer, batched):
            with timer("generate"):
                big = batch.repeat(len(chunk)) if batched else batch
                texts, n_tok = job.evaluator.completions(big, chunk_rows, len(chunk_rows) if batched else 0)
        with timer("score"):
            per_prompt = job.evaluator.score(texts, chunk_rows).reshape(len(chunk), p)
            rewards[chunk] = per_prompt.mean(1)
            bits[chunk] = np.packbits(per_prompt >= 0.5, axis=1)
        tokens += n_tok
    return rewards, bits, tokens


def exchange_and_update(job: Job, cfg: Config, seeds, signs, rewards, bits, scalars, timer: PhaseTimer):
    """Steps 3-4 of an iteration: all-reduce the length-N rewards (plus a few `scalars`), packed bits to rank 0
    only, then every rank shapes the rewards and applies the same update. Returns the summed rewards, the summed
    scalars, the bits (meaningful on rank 0) and the update's coefficients."""
    n = len(rewards)
    with timer("exchange"):
        summed = job.comm.allreduce_sum(np.concatenate([rewards, scalars]))
        bits = job.comm.reduce_sum_root(bits)  # each member's row is non-zero on one rank only
    with timer("update"):
        coef = coefficients(summed[:n], signs, sigma=cfg.es.sigma, alpha=cfg.es.alpha,
                            shaping=cfg.es.shaping, update_form=cfg.es.update_form)
        job.perturbed.update(seeds, coef)
    return summed[:n], summed[n:], bits, coef


def run(cfg: Config, out_dir: Path, resume: bool = False) -> dict | None:
    """Train; rank 0 returns a summary dict, the other ranks None."""
    with ExitStack() as cleanup:  # closes the log and leaves the process group whatever happens
        comm = comm_mod.make(cfg.dist.backend)
        cleanup.callback(comm.close)
        return _run(cfg, Path(out_dir), resume, comm, cleanup)


def _run(cfg: Config, out_dir: Path, resume: bool, comm, cleanup: ExitStack) -> dict | None:
    is_root = comm.rank == 0
    stop = StopRequest()  # from here on, a signal stops the job at the next iteration boundary
    say = print if is_root else (lambda *a, **k: None)
    job = open_job(cfg, comm)
    task, backend, perturbed, evaluator, threads = job.task, job.backend, job.perturbed, job.evaluator, job.threads
    train_rows = split_rows(task, "train", cfg.train.prompts_per_iteration, "train.prompts_per_iteration")
    eval_rows = task.rows(cfg.train.eval_split)[: cfg.train.eval_prompts or None]
    select_rows = task.rows(cfg.train.select_split)[: cfg.train.eval_prompts or None] if cfg.train.keep_best else []
    out_dir.mkdir(parents=True, exist_ok=True)

    state = {"iteration": 0, "best_reward": None, "best_iteration": None, "wall": 0.0}
    if resume:
        ckpt = checkpoint.latest(out_dir)
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {out_dir / 'checkpoints'}")
        state, tensors = checkpoint.load(ckpt)
        perturbed.load_state_dict(tensors)
        say(f"resumed from {ckpt} at iteration {state['iteration']}")
    start = state["iteration"]
    log = None
    if is_root:
        log = H5Log(out_dir / cfg.log.file, provenance(cfg, job), log_tables(cfg),
                    resume_iteration=start if resume else None)
        cleanup.callback(log.close)
    say(f"es_hpc train: {comm.world_size} rank(s) x {threads} thread(s), {perturbed.numel:,} perturbed parameters, "
        f"N={cfg.es.population} sigma={cfg.es.sigma} alpha={cfg.es.alpha}, P={cfg.train.prompts_per_iteration}, "
        f"{cfg.es.perturbation} noise ({perturbed.noise.implementation})")

    def evaluate(iteration: int) -> None:
        t0 = time.perf_counter()
        row = {"iteration": np.int64(iteration), "reward": np.float32(evaluator.mean(eval_rows))}
        msg = f"eval  {iteration:5d}  {cfg.train.eval_split} reward {row['reward']:.4f}"
        if cfg.train.keep_best:
            sel = evaluator.mean(select_rows)
            row["select_reward"] = np.float32(sel)
            msg += f"  {cfg.train.select_split} reward {sel:.4f}"
            if state["best_reward"] is None or sel > state["best_reward"]:
                state["best_reward"], state["best_iteration"] = sel, iteration
                save_checkpoint("best")
                msg += "  (best so far, saved)"
        row["wall"] = np.float64(state["wall"] + time.perf_counter() - t_start)
        row["seconds"] = np.float32(time.perf_counter() - t0)
        if log:
            log.append("eval", row)
        say(msg)

    def save_checkpoint(name: str) -> None:
        if not is_root:
            return
        masters = perturbed.state_dict() if backend.dtype != "float32" else None
        snap = dict(state, wall=state["wall"] + time.perf_counter() - t_start, config=cfg.to_json())
        checkpoint.save(out_dir, name, backend.save, masters, snap, keep=cfg.train.keep_checkpoints)

    t_start = time.perf_counter()
    if start == 0 and cfg.train.eval_every:
        evaluate(0)
    N = cfg.es.population
    for t in range(start, cfg.train.iterations):
        sent = comm.bytes_sent  # what this iteration hands to collectives (evaluations excluded)
        if cfg.train.checksum_every and t % cfg.train.checksum_every == 0:
            check_consistency(comm, perturbed, t)
        timer = PhaseTimer()
        rng = prompt_rng(cfg.es.seed, t)
        prompt_ids = rng.choice(len(train_rows), cfg.train.prompts_per_iteration, replace=False)
        rows = [train_rows[i] for i in prompt_ids]
        batch = backend.encode([task.prompt(r) for r in rows])
        seeds, signs = member_seeds(cfg.es.seed, t, N, cfg.es.antithetic)
        drift_check = is_root and cfg.train.drift_every and t % cfg.train.drift_every == 0
        if drift_check:  # the unperturbed reward, re-measured below after this rank's perturb/restore cycles
            before = evaluator.local_rewards(rows, batch).mean()
        rewards, bits, tokens = evaluate_members(job, seeds, signs, cfg.es.sigma, batch, rows, timer)
        drift = evaluator.local_rewards(rows, batch).mean() - before if drift_check else np.nan

        rewards, (tokens, stop_votes), bits, _ = exchange_and_update(job, cfg, seeds, signs, rewards, bits,
                                                                    [tokens, stop.signal > 0], timer)
        tokens = int(tokens)
        u = state["iteration"] = t + 1
        if log:
            log.append("train", {
                "iteration": np.int64(t), "seeds": seeds, "signs": signs, "rewards": rewards.astype(np.float32),
                "sigma": np.float32(cfg.es.sigma), "alpha": np.float32(cfg.es.alpha), "tokens": np.int64(tokens),
                "prompt_ids": prompt_ids, "prompt_bits": bits, "comm_bytes": np.int64(comm.bytes_sent - sent),
                "baseline_drift": np.float32(drift), "wall": np.float64(state["wall"] + time.perf_counter() - t_start),
                **{f"time/{p}": np.float32(v) for p, v in timer.seconds.items()},
            })
        say(f"iter  {t:5d}  reward mean {rewards.mean():.4f} max {rewards.max():.4f}  tokens {tokens}  "
            + " ".join(f"{p} {v:.2f}s" for p, v in timer.seconds.items() if v >= 0.005))
        if cfg.train.eval_every and (u % cfg.train.eval_every == 0 or u == cfg.train.iterations):
            evaluate(u)
        if (cfg.train.checkpoint_every and u % cfg.train.checkpoint_every == 0) or u == cfg.train.iterations or stop_votes:
            save_checkpoint(f"iter_{u:06d}")
        if stop_votes:  # every rank saw the same all-reduced vote, so all stop here together
            comm.barrier()  # rank 0's checkpoint is complete before anyone exits
            raise Preempted(f"stopped by a signal after iteration {t}; checkpoint iter_{u:06d} written; "
                            "continue with --resume")
    comm.barrier()  # leave together, once rank 0 has written the final checkpoint
    if not is_root:
        return None
    return {"iterations": cfg.train.iterations, "best_iteration": state["best_iteration"],
            "best_reward": state["best_reward"], "wall": time.perf_counter() - t_start}
