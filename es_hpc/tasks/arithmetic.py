"""The built-in synthetic task: a+b over all d-digit pairs, scored by exact match of the decimal sum."""
from __future__ import annotations

import numpy as np

from .base import Task, check_split


class Arithmetic(Task):
    """Questions "a+b=" with a, b in [0, 10**digits), written without leading zeros ("7+35="); answer "42".

    All pairs are enumerated and shuffled once with `seed`; the first n_test are test, the next n_val are
    val and the rest are train, so the splits are disjoint and the same on every rank and every run.
    """

    name = "arithmetic"

    def __init__(self, digits: int = 2, seed: int = 0, n_val: int = 500, n_test: int = 500):
        n = 10**digits
        if digits < 1 or n_val < 1 or n_test < 1 or n_val + n_test >= n * n:
            raise ValueError(f"arithmetic: need digits >= 1 and 0 < n_val + n_test < {n * n} (all pairs)")
        order = np.random.default_rng(seed).permutation(n * n)
        rows = [{"question": f"{i // n}+{i % n}=", "answer": str(i // n + i % n)} for i in order.tolist()]
        self._splits = {"test": rows[:n_test], "val": rows[n_test:n_test + n_val], "train": rows[n_test + n_val:]}
        self.max_new_tokens = len(str(2 * (n - 1))) + 1

    def rows(self, split: str) -> list[dict]:
        check_split(split)
        return [dict(r) for r in self._splits[split]]

    def prompt(self, row: dict) -> list[dict]:
        return [{"role": "user", "content": row["question"]}]

    def reward(self, completion: str, row: dict) -> float:
        """1.0 iff the completion, stripped of surrounding whitespace, is exactly the sum ("046" scores 0)."""
        return 1.0 if completion.strip() == row["answer"] else 0.0

    def reference_completion(self, row: dict) -> str:
        """The sum: `reward` is exact match of the stripped completion against it."""
        return row["answer"]
