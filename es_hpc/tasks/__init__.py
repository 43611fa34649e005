"""Tasks by name: `get("arithmetic", digits=2)` builds one; new tasks register in TASKS."""
from __future__ import annotations

from .arithmetic import Arithmetic
from .base import SPLITS, Task, fixed_pool

TASKS: dict[str, type[Task]] = {"arithmetic": Arithmetic}


def get(name: str, **options) -> Task:
    """The task registered as `name`, built with `options` (the config's task.options)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](**options)


__all__ = ["SPLITS", "TASKS", "Task", "fixed_pool", "get"]
