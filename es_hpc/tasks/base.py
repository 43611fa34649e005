"""What ES optimizes: a task is prompts split train/val/test plus a verifiable reward on completions."""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def check_split(split: str) -> None:
    """Fail with one line naming the split, so a typo in a config never silently selects nothing."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")


def fixed_pool_ids(n_rows: int, size: int, pool_seed: int) -> np.ndarray:
    """Row indices of the paper's fixed evaluation pool (Appendix G.3): the first `size` of a deterministic
    shuffle with `pool_seed`; the same rows on every rank, run and model size."""
    if size > n_rows:
        raise ValueError(f"pool of {size} prompts requested but the split has only {n_rows} rows")
    return np.random.default_rng(pool_seed).permutation(n_rows)[:size]


def fixed_pool(rows: list[dict], size: int, pool_seed: int) -> list[dict]:
    """The rows of the fixed evaluation pool (fixed_pool_ids), in pool order."""
    return [rows[i] for i in fixed_pool_ids(len(rows), size, pool_seed).tolist()]


class Task:
    """Base of every task: deterministic rows per split, chat prompts, and a scalar reward per completion.

    A task defined outside es_hpc (`task.name: package.module:ClassName`, or an installed entry point) has its
    reward scored in a worker process under `task.reward_timeout` (es_hpc/eval/rewards.py); so is a built-in
    one whose reward runs code from the config (`isolated_reward`, prompt_answer's regex). Building a task reads
    no dataset: rows are read on first use, so the rules (prompt, reward) work anywhere.
    """

    name: str = ""
    max_new_tokens: int = 0  # longest answer plus the end token: generation can stop there
    isolated_reward: bool = False  # a built-in task's reward that runs code from the config: scored in the worker

    def rows(self, split: str) -> list[dict]:
        """The rows of `split` ("train", "val" or "test"), in a fixed order that depends only on the options."""
        raise NotImplementedError

    def prompt(self, row: dict) -> list[dict]:
        """The chat messages shown to the model for `row`; the backend applies the chat template."""
        raise NotImplementedError

    def reward(self, completion: str, row: dict) -> float:
        """The score of one decoded completion (special tokens dropped) for `row`."""
        raise NotImplementedError

    def reference_completion(self, row: dict) -> str | None:
        """The one correct completion of an exact-match task, or None. A task returning it promises that
        reward(c, row) is 1.0 when c.strip() == reference.strip() and 0.0 otherwise, which lets the evaluator
        score greedy decoding by one teacher-forced forward pass (es_hpc/eval/teacher_forced.py) instead of
        generating."""
        return None
