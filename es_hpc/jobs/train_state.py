"""What the train job keeps besides the weights: its log's tables, the held-out evaluation that picks the best
checkpoint (keep-best, chosen on one split and reported on another), the training wall clock and checkpoints."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..runtime import checkpoint
from ..runtime.timing import PHASES


def log_tables(cfg) -> dict:
    """The appended tables of the train log (README, "HDF5 log schema"): each column's row shape and dtype, fixed
    by the config (eval/ only with train.eval_every, eval/select_reward only with train.keep_best)."""
    n, p = cfg.es.population, cfg.train.prompts_per_iteration
    train = {"iteration": ((), np.int64), "seeds": ((n,), np.uint64), "signs": ((n,), np.int8),
             "rewards": ((n,), np.float32), "sigma": ((), np.float32), "alpha": ((), np.float32),
             "tokens": ((), np.int64), "prompt_ids": ((p,), np.int64), "prompt_bits": ((n, (p + 7) // 8), np.uint8),
             "comm_bytes": ((), np.int64), "baseline_drift": ((), np.float32), "wall": ((), np.float64),
             "reward_errors": ((), np.int64),
             **{f"time/{phase}": ((), np.float32) for phase in PHASES}}
    if not cfg.train.eval_every:
        return {"train": train}
    select = {"select_reward": ((), np.float32)} if cfg.train.keep_best else {}
    return {"train": train, "eval": {"iteration": ((), np.int64), "reward": ((), np.float32), **select,
                                     "wall": ((), np.float64), "seconds": ((), np.float32)}}


def reward_errors_line(t: int, count: int, rewards, before: int) -> str:
    """Iteration t's report of its members' rewards that failed and scored 0 (es_hpc/eval/rewards.py): how many
    on all ranks, and why rank 0's last one failed when rank 0 had some (`before`: its count before them)."""
    why = f"; rank 0's last: {rewards.last_error}" if rewards.errors > before else ""
    return f"iter  {t:5d}  {count} reward(s) raised or ran past task.reward_timeout and scored 0{why}"


class TrainState:
    """Iteration, best validation reward and its iteration, and training seconds: saved in every checkpoint, so a
    resumed run continues the same wall clock and keep-best choice."""

    def __init__(self, cfg, job, sink, out_dir: Path, resume: bool):
        self.cfg, self.job, self.sink, self.out_dir = cfg, job, sink, out_dir
        self.state = {"iteration": 0, "best_reward": None, "best_iteration": None, "wall": 0.0}
        if resume:
            ckpt = checkpoint.latest(out_dir)
            if ckpt is None:
                raise FileNotFoundError(f"--resume: no complete checkpoint under {out_dir / 'checkpoints'}")
            self.state, tensors = checkpoint.load(ckpt)
            job.perturbed.load_state_dict(tensors)
            sink.say(f"resumed from {ckpt} at iteration {self.state['iteration']}")
        self.start = self.state["iteration"]
        self.t_start = time.perf_counter()
        t = cfg.train
        self.eval_rows = job.task.rows(t.eval_split)[: t.eval_prompts or None]
        self.select_rows = job.task.rows(t.select_split)[: t.eval_prompts or None] if t.keep_best else []

    def wall(self) -> float:
        """Seconds of training so far, over every attempt of a resumed run."""
        return self.state["wall"] + time.perf_counter() - self.t_start

    def pace(self, t: int) -> str:
        """`S s/it  eta [H:]MM:SS` after iteration t: this attempt's mean seconds per iteration (its evaluations and
        checkpoints included) and the time the iterations left would take at that pace."""
        per_iteration = (time.perf_counter() - self.t_start) / (t + 1 - self.start)
        eta = round(per_iteration * (self.cfg.train.iterations - t - 1))
        hours, minutes = divmod(eta // 60, 60)
        return f"{per_iteration:.2f} s/it  eta {f'{hours}:' if hours else ''}{minutes:02d}:{eta % 60:02d}"

    def evaluate(self, iteration: int) -> None:
        """The held-out reward (train.eval_split) and, with keep_best, the selection reward, saving "best" when it
        improves; one eval/ row and one line."""
        t0 = time.perf_counter()
        cfg, evaluator = self.cfg.train, self.job.evaluator
        row = {"iteration": np.int64(iteration), "reward": np.float32(evaluator.mean(self.eval_rows))}
        msg = f"eval  {iteration:5d}  {cfg.eval_split} reward {row['reward']:.4f}"
        if cfg.keep_best:
            sel = evaluator.mean(self.select_rows)
            row["select_reward"] = np.float32(sel)
            msg += f"  {cfg.select_split} reward {sel:.4f}"
            if self.state["best_reward"] is None or sel > self.state["best_reward"]:
                self.state["best_reward"], self.state["best_iteration"] = sel, iteration
                self.save("best")
                msg += "  (best so far, saved)"
        row["wall"] = np.float64(self.wall())
        row["seconds"] = np.float32(time.perf_counter() - t0)
        self.sink.append("eval", row)
        self.sink.say(msg)

    def after(self, u: int, stop: bool) -> None:
        """Bookkeeping after update u (the iteration count): held-out evaluation and checkpoints when they are due,
        and a checkpoint whenever the ranks agreed to stop."""
        cfg = self.cfg.train
        self.state["iteration"] = u
        if cfg.eval_every and (u % cfg.eval_every == 0 or u == cfg.iterations):
            self.evaluate(u)
        if (cfg.checkpoint_every and u % cfg.checkpoint_every == 0) or u == cfg.iterations or stop:
            self.save(f"iter_{u:06d}")

    def save(self, name: str) -> None:
        """Checkpoint `name` on rank 0: the model, the fp32 masters of a non-fp32 model, and this state."""
        if not self.sink.active:
            return
        job = self.job
        masters = job.perturbed.state_dict() if job.backend.dtype != "float32" else None
        snap = dict(self.state, wall=self.wall(), config=self.cfg.to_json())
        checkpoint.save(self.out_dir, name, job.backend.save, masters, snap, keep=self.cfg.train.keep_checkpoints)

    def summary(self) -> dict:
        return {"iterations": self.cfg.train.iterations, "best_iteration": self.state["best_iteration"],
                "best_reward": self.state["best_reward"], "wall": time.perf_counter() - self.t_start}
