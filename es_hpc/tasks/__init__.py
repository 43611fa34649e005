"""Tasks by name: `get("gsm8k", path="data/gsm8k")` builds one; building reads no dataset (rows on first use).

`task.name` is a built-in task (TASKS), the name an installed package registers in the `es_hpc.tasks`
entry-point group (`[project.entry-points."es_hpc.tasks"] mytask = "mypkg.tasks:MyTask"`; a built-in name
wins), or `package.module:ClassName` of any importable module. Each names a subclass of Task.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import inspect

from ..config import ConfigError
from ..errors import error_line
from .arc import ARCChallenge
from .arithmetic import Arithmetic
from .base import SPLITS, Task, fixed_pool, fixed_pool_ids
from .countdown import Countdown
from .gsm8k import GSM8K
from .prompt_answer import PromptAnswer
from .winogrande import WinoGrande

TASKS: dict[str, type[Task]] = {
    "arithmetic": Arithmetic, "gsm8k": GSM8K, "arc_challenge": ARCChallenge, "winogrande": WinoGrande,
    "countdown": Countdown, "prompt_answer": PromptAnswer,
}
ENTRY_POINTS = "es_hpc.tasks"


def installed() -> dict[str, importlib.metadata.EntryPoint]:
    """The tasks installed packages register in the es_hpc.tasks entry-point group, by name (not loaded)."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def _task_class(name: str, obj, source: str) -> type[Task]:
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise ConfigError(f"task.name: {name!r} ({source}) is not a subclass of es_hpc.tasks.Task: {obj!r}")
    return obj


def _from_path(name: str) -> type[Task]:
    """The class `package.module:ClassName` names, imported; one-line ConfigErrors naming task.name."""
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ConfigError(f"task.name: {name!r} is not package.module:ClassName")
    try:
        found = importlib.import_module(module)
    except Exception as exc:  # the module's own code may raise anything while it is imported
        raise ConfigError(f"task.name: cannot import module {module!r} ({error_line(exc)})") from None
    if not hasattr(found, attr):
        raise ConfigError(f"task.name: module {module!r} has no {attr!r}")
    return _task_class(name, getattr(found, attr), f"from module {module}")


def resolve(name: str) -> type[Task]:
    """The Task class `name` names (module doc); a ConfigError naming task.name when there is none."""
    if name in TASKS:
        return TASKS[name]
    if ":" in name:
        return _from_path(name)
    entries = installed()
    if name not in entries:
        known = ", ".join([*TASKS, *sorted(entries)])
        raise ConfigError(f"task.name: unknown task {name!r}; known tasks: {known}; or package.module:ClassName")
    try:
        loaded = entries[name].load()
    except Exception as exc:
        raise ConfigError(f"task.name: cannot load {name!r} from its entry point {entries[name].value!r} "
                          f"({error_line(exc)})") from None
    return _task_class(name, loaded, f"entry point {entries[name].value}")


def check_options(name: str, options: dict) -> type[Task]:
    """The class of task `name` (resolve), or a ConfigError naming task.name or task.options.KEY unless it takes
    `options` as keyword arguments; nothing is loaded but the task's module."""
    cls = resolve(name)
    params = {} if cls.__init__ is object.__init__ else inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls
    known = [n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in options:
        if key not in known:
            raise ConfigError(f"task.options.{key}: unknown option of {name} (known: {', '.join(known) or 'none'})")
    return cls


def get(name: str, /, **options) -> Task:
    """The task `name` names (module doc), built with `options` (the config's task.options); a bad name or
    option is a ConfigError naming task.name or task.options."""
    cls = check_options(name, options)
    try:
        return cls(**options)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:  # TypeError: a task's own __init__ refusing its arguments
        raise ConfigError(f"task.options: {exc}") from None


__all__ = ["ENTRY_POINTS", "SPLITS", "TASKS", "Task", "check_options", "fixed_pool", "fixed_pool_ids", "get",
           "installed", "resolve"]
