"""Rewards of the backend's current weights on task rows: greedy completions scored by the task's reward
(through es_hpc/eval/rewards.py: a reward that fails scores 0 and is counted)."""
from __future__ import annotations

import numpy as np

from ..config import TaskConfig
from . import teacher_forced
from .rewards import Rewards


class Evaluator:
    """Mean reward of the current weights on a list of rows, rows sharded over ranks, sums all-reduced."""

    def __init__(self, task, backend, comm, max_new_tokens: int, batch_size: int,
                 exact_fast_path: bool = False, dtype: str = "float32",
                 reward_timeout: float = TaskConfig.reward_timeout):
        self.task, self.backend, self.comm = task, backend, comm
        self.rewards = Rewards(task, reward_timeout)  # .errors: this rank's failed rewards so far
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
        if None in refs or not self.backend.teacher_forcing:
            return self.generate(batch, batch_size)
        texts, tokens = teacher_forced.greedy_completions(self.backend, batch, refs, self.max_new_tokens,
                                                          batch_size, self.margin)
        if None in texts:  # the whole batch, so that these rows see exactly what generate-then-compare sees
            generated, _ = self.generate(batch, batch_size)
            texts = [g if t is None else t for t, g in zip(texts, generated)]
        return texts, tokens

    def score(self, texts: list[str], rows: list[dict]) -> np.ndarray:
        """The reward of each completion; one that fails scores 0 and counts in self.rewards.errors."""
        return self.rewards(texts, rows)

    def local_rewards(self, rows: list[dict], batch=None) -> np.ndarray:
        """This process's per-row rewards of `rows` (encoded once as `batch` when given)."""
        if not rows:
            return np.zeros(0)
        batch = batch or self.backend.encode([self.task.prompt(r) for r in rows])
        return self.score(self.completions(batch, rows)[0], rows)

    def mean(self, rows: list[dict]) -> float:
        """The mean reward over `rows`, each rank scoring its share (rows i with i % W == rank)."""
        mine = [rows[i] for i in self.comm.owned(len(rows))]
        r = self.local_rewards(mine)
        total, count = self.comm.allreduce_sum(np.array([r.sum(), len(r)]))
        return float(total / count)
