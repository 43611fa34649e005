"""The bench job: what an ES iteration costs against generation alone, phase by phase (issue 9).

Ratios, not absolute times, are the result (shared machines are noisy): every timing is the best of a few
repeats, taken as wall-clock and as this process's CPU time, and each ratio is given in both.
"""
from __future__ import annotations

import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import comm as comm_mod, tasks
from .backends.hf import HFBackend, pick_device
from .config import Config
from .core.lowrank import LowRankParams
from .core.seeds import member_seeds
from .h5log import H5Log
from .train import (PHASES, Evaluator, Job, PhaseTimer, evaluate_members, exchange_and_update, log_tables,
                    make_perturbed, set_threads)

LOGGED = ("iteration", "seeds", "rewards", "prompt_bits", "tokens")  # the train log's columns a bench row writes


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds) of `repeats` calls of fn."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


def _peak_memory(device: torch.device) -> int:
    """Peak bytes so far: device memory on a GPU, else this process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memcpy_bandwidth(device: torch.device, mib: int = 256, repeats: int = 5) -> float:
    """Bytes per second moved by a large tensor copy (read + write counted), this machine's memory bound."""
    src = torch.ones(mib << 18, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def copy():
        dst.copy_(src)
        sync()
    return 2 * src.numel() * 4 / _timed(copy, repeats)[0]


def _iteration(job: Job, cfg: Config, t: int, batch, rows, log: H5Log) -> tuple[PhaseTimer, int]:
    """One ES iteration of the train loop on this process (members, exchange, update, log row), phase-timed;
    also the number of members whose noise the update drew (those with a non-zero coefficient)."""
    timer = PhaseTimer((*PHASES, "log"))
    seeds, signs = member_seeds(cfg.es.seed, t, cfg.es.population, cfg.es.antithetic)
    rewards, bits, tokens = evaluate_members(job, seeds, signs, cfg.es.sigma, batch, rows, timer)
    rewards, (tokens,), bits, coef = exchange_and_update(job, cfg, seeds, signs, rewards, bits, [tokens], timer)
    with timer("log"):
        log.append("train", {"iteration": np.int64(t), "seeds": seeds, "rewards": rewards.astype(np.float32),
                             "prompt_bits": bits, "tokens": np.int64(tokens)})
    return timer, int(np.count_nonzero(coef))


def run(cfg: Config, reduced: bool = False) -> dict:
    """Measure the configured model and task with N = es.population members on P = train.prompts_per_iteration."""
    if reduced:
        cfg = dataclasses.replace(cfg, es=dataclasses.replace(cfg.es, population=4),
                                  train=dataclasses.replace(cfg.train, prompts_per_iteration=8))
    repeats = 1 if reduced else 3
    n, p = cfg.es.population, cfg.train.prompts_per_iteration
    comm = comm_mod.make("local")
    threads = set_threads(cfg, comm)
    task = tasks.get(cfg.task.name, **cfg.task.options)
    backend = HFBackend(cfg.model, pick_device(cfg.model.device))
    evaluator = Evaluator(task, backend, comm, cfg.generation.max_new_tokens or task.max_new_tokens,
                          cfg.generation.batch_size, cfg.generation.exact_fast_path, backend.dtype)
    rows = task.rows("train")[:p]
    batch = backend.encode([task.prompt(r) for r in rows])
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 (stdout carries only the JSON)

    evaluator.generate(batch)  # warm-up
    everyone = batch.repeat(n)

    def generation_alone() -> tuple[tuple[float, float], tuple[float, float]]:
        """Best times of the N x P completions with P rows a call, and with generation.batch_size rows a call."""
        return (_timed(lambda: [evaluator.generate(batch) for _ in range(n)], repeats),
                _timed(lambda: evaluator.generate(everyone), repeats))
    per_member, pooled = generation_alone()
    inference_peak = _peak_memory(backend.device)
    say(f"bench: generation alone, {n} x {p} completions: {min(per_member, pooled)[0]:.2f} s")

    perturbed = make_perturbed(cfg, backend)
    job = Job(comm, task, backend, perturbed, evaluator, threads, cfg.generation.members_per_call,
              cfg.generation.population_memory_mb)
    batched = job.batch_members(p)  # as configured, or where that is 1 (the CPU's auto) generation.batch_size rows
    batched = min(n, batched if batched > 1 else max(2, cfg.generation.batch_size // p))
    scorings = {"generate": False, "fast_path": True} if evaluator.exact_fast_path else {"generate": False}
    modes = {name: (fast, 1) for name, fast in scorings.items()}  # the per-member loop first: its peak memory
    modes.update({name + "_batched": (fast, batched) for name, fast in scorings.items()})
    es_peak = None
    iterations, phases, drawn_by = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        train = log_tables(cfg)["train"]
        log = H5Log(Path(tmp) / "bench.h5", {"config": cfg.to_json()}, {"train": {k: train[k] for k in LOGGED}})
        t = 0
        for mode, (fast, per_call) in modes.items():
            if per_call > 1 and es_peak is None:
                es_peak = _peak_memory(backend.device)
            evaluator.exact_fast_path, job.members_per_call = fast, per_call
            best = None
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                timer, drawn = _iteration(job, cfg, t, batch, rows, log)
                took = (time.perf_counter() - wall, time.process_time() - cpu)
                t += 1
                if best is None or took < best[0]:
                    best = (took, timer.seconds, drawn)
            iterations[mode], phases[mode], drawn_by[mode] = best
            say(f"bench: ES iteration ({mode}, {per_call} member(s) a call): {best[0][0]:.2f} s")
        log.close()
    evaluator.exact_fast_path = cfg.generation.exact_fast_path
    batched_peak = _peak_memory(backend.device)
    again = generation_alone()  # before and after the ES iterations, so a slow spell of the machine biases no ratio
    per_member, pooled = min(per_member, again[0]), min(pooled, again[1])
    inference = min(per_member, pooled)
    say(f"bench: generation alone, measured again: {min(again)[0]:.2f} s")

    def draw_all(k: int) -> None:
        """Every tensor's noise of member k: the factors of a low-rank matrix, else the full tensor."""
        for j, (i, m) in enumerate(zip(perturbed.indices, perturbed.masters)):
            if isinstance(perturbed, LowRankParams) and perturbed.is_matrix[j]:
                perturbed.factors(k, j)
            else:
                perturbed.noise.draw(k, i, m.shape)
    noise = _timed(lambda: [draw_all(k) for k in range(n)], repeats)
    seeds, _ = member_seeds(cfg.es.seed, 0, n, False)

    def cycle():
        for k in range(n):
            perturbed.perturb(int(seeds[k]), cfg.es.sigma)
            perturbed.restore()
        perturbed.update(seeds, np.zeros(n) + 1e-12)
    cycle_time = _timed(cycle, repeats)
    bandwidth = memcpy_bandwidth(backend.device)
    master = sum(m.numel() * m.element_size() for m in perturbed.masters)
    best_mode = min(iterations, key=lambda m: iterations[m][0])
    it = iterations[best_mode]
    loop = best_mode.removesuffix("_batched")  # batched vs per-member loop, with the faster way of scoring
    # perturb draws every member's noise, the update every member's with a non-zero coefficient
    phase = dict(phases[best_mode], noise=noise[0] * (n + drawn_by[best_mode]) / n)
    return {
        "model": cfg.model.path, "device": str(backend.device), "threads": threads, "population": n, "prompts": p,
        "perturbed_parameters": perturbed.numel, "reduced": reduced, "mode": best_mode,
        "iteration_seconds": it[0], "iteration_cpu_seconds": it[1],
        "inference_seconds": inference[0], "inference_cpu_seconds": inference[1],
        "inference_seconds_by_rows_per_call": {p: per_member[0], min(n * p, cfg.generation.batch_size): pooled[0]},
        "overhead_ratio": it[0] / inference[0], "overhead_ratio_cpu": it[1] / inference[1],
        "phases": phase, "phases_note": "noise is part of perturb and update",
        "noise_share": phase["noise"] / it[0],
        "iteration_seconds_by_mode": {m: v[0] for m, v in iterations.items()},
        "speedup_fast_path": (min(iterations["generate"][0], iterations["generate_batched"][0])
                              / min(iterations["fast_path"][0], iterations["fast_path_batched"][0])
                              if "fast_path" in iterations else None),
        "members_per_call_batched": batched, "perturbation": cfg.es.perturbation,
        "speedup_batched": iterations[loop][0] / iterations[loop + "_batched"][0],
        "peak_memory_inference_bytes": inference_peak, "peak_memory_es_bytes": es_peak,
        "peak_memory_ratio": es_peak / inference_peak, "peak_memory_batched_bytes": batched_peak,
        "peak_memory_ratio_without_master": (es_peak - master) / inference_peak,
        "master_bytes": master,
        "perturb_restore_update_params_per_s": 3 * n * perturbed.numel / cycle_time[0],
        "memcpy_bytes_per_s": bandwidth, "memcpy_params_per_s": bandwidth / 8,
    }
