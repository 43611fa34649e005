"""What ES optimizes: a task is prompts split train/val/test plus a verifiable reward on completions."""
from __future__ import annotations

SPLITS = ("train", "val", "test")


def check_split(split: str) -> None:
    """Fail with one line naming the split, so a typo in a config never silently selects nothing."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")


class Task:
    """Base of every task: deterministic rows per split, chat prompts, and a scalar reward per completion."""

    name: str = ""
    max_new_tokens: int = 0  # longest answer plus the end token: generation can stop there

    def rows(self, split: str) -> list[dict]:
        """The rows of `split` ("train", "val" or "test"), in a fixed order that depends only on the options."""
        raise NotImplementedError

    def prompt(self, row: dict) -> list[dict]:
        """The chat messages shown to the model for `row`; the backend applies the chat template."""
        raise NotImplementedError

    def reward(self, completion: str, row: dict) -> float:
        """The score of one decoded completion (special tokens dropped) for `row`."""
        raise NotImplementedError
