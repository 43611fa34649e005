"""Tasks by name: `get("gsm8k", path="data/gsm8k")` builds one; new tasks register in TASKS."""
from __future__ import annotations

import inspect

from ..config import ConfigError
from .arc import ARCChallenge
from .arithmetic import Arithmetic
from .base import SPLITS, Task, fixed_pool, fixed_pool_ids
from .countdown import Countdown
from .gsm8k import GSM8K
from .winogrande import WinoGrande

TASKS: dict[str, type[Task]] = {
    "arithmetic": Arithmetic, "gsm8k": GSM8K, "arc_challenge": ARCChallenge, "winogrande": WinoGrande,
    "countdown": Countdown,
}


def check_options(name: str, options: dict) -> None:
    """A ConfigError naming task.name or task.options.KEY unless `name` is registered and takes `options`;
    nothing is loaded."""
    if name not in TASKS:
        raise ConfigError(f"task.name: unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    known = [n for n in inspect.signature(TASKS[name].__init__).parameters if n != "self"]
    for key in options:
        if key not in known:
            raise ConfigError(f"task.options.{key}: unknown option of {name} (known: {', '.join(known)})")


def get(name: str, /, **options) -> Task:
    """The task registered as `name`, built with `options` (the config's task.options); a bad name or option
    is a ConfigError naming task.name or task.options."""
    check_options(name, options)
    try:
        return TASKS[name](**options)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"task.options: {exc}") from None


__all__ = ["SPLITS", "TASKS", "Task", "check_options", "fixed_pool", "fixed_pool_ids", "get"]
