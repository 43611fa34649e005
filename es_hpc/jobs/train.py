"""The train job: Algorithm 1 over ranks, with held-out evaluation, the HDF5 log and checkpoints.

Each iteration t: the prompt batch and the N member seeds follow from (es.seed, t) on every rank; each rank
evaluates its members (k % W == rank); the N rewards are all-reduced and every rank applies the same update
theta += sum_k c_k eps_k (Eq. 1), so the ranks stay bit-identical without ever exchanging weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.seeds import prompt_rng
from ..core.strategy import ES
from ..errors import Preempted
from ..eval.members import evaluate_over_ranks
from ..runtime.job import open_job, split_rows
from ..runtime.provenance import provenance
from ..runtime.run import run_job
from ..runtime.signals import StopRequest
from ..runtime.timing import PhaseTimer
from .train_state import TrainState, log_tables, reward_errors_line


def run(cfg, out_dir: Path, resume: bool = False) -> dict | None:
    """Train; rank 0 returns a summary dict, the other ranks None."""
    return run_job(cfg, _train, Path(out_dir), resume)


def _train(cfg, comm, sink, out_dir: Path, resume: bool) -> dict:
    stop = StopRequest()  # from here on, a signal stops the job at the next iteration boundary
    job = open_job(cfg, comm)
    es = ES.from_config(cfg.es)
    train_rows = split_rows(job.task, "train", cfg.train.prompts_per_iteration, "train.prompts_per_iteration")
    state = TrainState(cfg, job, sink, out_dir, resume)
    sink.open(out_dir / cfg.log.file, provenance(cfg, job), log_tables(cfg),
              resume_iteration=state.start if resume else None)
    sink.say(job.banner("train", f"N={es.population} sigma={es.sigma} alpha={es.alpha}, "
                                 f"P={cfg.train.prompts_per_iteration}, {cfg.es.perturbation} noise "
                                 f"({job.perturbed.noise.implementation})"))
    sink.open_live(cfg, out_dir, resume_iteration=state.start if resume else None)
    if state.start == 0 and cfg.train.eval_every:
        state.evaluate(0)
    for t in range(state.start, cfg.train.iterations):
        stopping = _iteration(cfg, job, es, t, train_rows, stop, sink, state)
        state.after(t + 1, stopping)
        if stopping:  # every rank saw the same all-reduced vote, so all stop here together
            comm.barrier()  # rank 0's checkpoint is complete before anyone exits
            raise Preempted(f"stopped by a signal after iteration {t}; checkpoint iter_{t + 1:06d} written; "
                            "continue with --resume")
    return state.summary()


def _iteration(cfg, job, es: ES, t: int, train_rows: list[dict], stop: StopRequest, sink, state) -> bool:
    """One iteration of Algorithm 1 and its log row; True when some rank received a stop signal."""
    comm, evaluator, timer = job.comm, job.evaluator, PhaseTimer()
    sent = comm.bytes_sent  # what this iteration hands to collectives (evaluations excluded)
    if cfg.train.checksum_every and t % cfg.train.checksum_every == 0:
        job.check_consistency(t)
    prompt_ids = prompt_rng(cfg.es.seed, t).choice(len(train_rows), cfg.train.prompts_per_iteration, replace=False)
    rows = [train_rows[i] for i in prompt_ids]
    batch = job.backend.encode([job.task.prompt(r) for r in rows])
    seeds, signs = es.ask(t)
    drift_check = sink.active and cfg.train.drift_every and t % cfg.train.drift_every == 0
    if drift_check:  # the unperturbed reward, re-measured below after this rank's perturb/restore cycles
        before = evaluator.local_rewards(rows, batch).mean()
    failed = evaluator.rewards.errors  # this rank's failed rewards so far: its members' are counted from here
    rewards, tokens, (votes, errors), bits = evaluate_over_ranks(
        job, seeds, signs, es.sigma, batch, rows, timer,
        scalars=lambda: [stop.signal > 0, evaluator.rewards.errors - failed])
    drift = evaluator.local_rewards(rows, batch).mean() - before if drift_check else np.nan
    with timer("update"):
        es.tell(job.perturbed, seeds, signs, rewards)
    sink.append("train", {
        "iteration": np.int64(t), "seeds": seeds, "signs": signs, "rewards": rewards.astype(np.float32),
        "sigma": np.float32(es.sigma), "alpha": np.float32(es.alpha), "tokens": np.int64(tokens),
        "prompt_ids": prompt_ids, "prompt_bits": bits, "comm_bytes": np.int64(comm.bytes_sent - sent),
        "baseline_drift": np.float32(drift), "wall": np.float64(state.wall()), "reward_errors": np.int64(errors),
        **{f"time/{p}": np.float32(v) for p, v in timer.seconds.items()},
    })
    sink.say(f"iter  {t:5d}/{cfg.train.iterations}  reward mean {rewards.mean():.4f} max {rewards.max():.4f}  "
             f"tokens {tokens}  {state.pace(t)}  " + timer.line())
    if errors:
        sink.say(reward_errors_line(t, int(errors), evaluator.rewards, failed))
    return votes > 0
