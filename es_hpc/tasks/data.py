"""Rows of a public dataset, from a hub id or local files, split train/val/test; the base of the dataset tasks.

`path` is a hub id (`openai/gsm8k`, loaded with `datasets.load_dataset(path, name)`; offline it must already
be in the datasets cache) or a local path, loaded offline:
  - a file (.jsonl, .json, .parquet, .csv, .arrow): one split, "train";
  - a `save_to_disk` folder (a DatasetDict keeps its splits, a single Dataset is "train");
  - a folder of such files: splits from the file names as in `datasets` (train*.jsonl, test-0000.parquet,
    validation.jsonl, ...); when `name` is a subfolder (a hub snapshot: main/, ARC-Challenge/), that one.
`splits` maps the task's splits to the dataset's; a task split mapped to null is carved from the dataset's
train split: a permutation with `split_seed` puts its first `test_size` rows in test (when derived), the next
`val_size` in val (when derived), and train keeps the rest in the dataset's own order. So `val_size: 0` leaves
the train split exactly as published (the paper's probe pool, Appendix G.3, is drawn from it).

Building a task checks its options and that a local path exists, but reads nothing: the rows are read on the
first `rows()` call (and a pickled task carries no rows), so `tasks.get("gsm8k").reward(...)` needs no data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backends.model_path import is_local
from ..config import ConfigError
from ..errors import first_line
from .base import SPLITS, Task, check_split

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


def _datasets():
    """`datasets`, imported on first use (it is slow to import), quiet: no progress bars in batch logs, and its
    errors reach the user as one ConfigError line instead of log lines."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    return datasets


def _reason(exc: BaseException) -> str:
    """The first line of the error, or of its cause where datasets wrapped the parser's message in a generic one."""
    while type(exc).__name__ in ("DatasetGenerationError", "DatasetBuildError") and (exc.__cause__ or exc.__context__):
        exc = exc.__cause__ or exc.__context__
    return first_line(exc)


def check_path(path: str) -> None:
    """A ConfigError naming task.options.path unless `path` is a hub id or an existing local folder or file of
    a known format; nothing is read."""
    if is_local(path):
        p = Path(path).expanduser()
        if p.is_file() and p.suffix not in FILE_FORMATS:
            raise ConfigError(f"task.options.path: {p} is not one of {', '.join(FILE_FORMATS)}")
        if not p.exists():
            raise ConfigError(f"task.options.path: no such file or folder: {p}")


def load_splits(path: str, name: str | None = None) -> dict[str, list[dict]]:
    """Every split of the dataset at `path` (hub id or local path, see the module doc) as lists of rows."""
    ds = _datasets()
    errors = (OSError, ValueError, ds.exceptions.DatasetsError)  # not found, offline, unreadable, bad schema
    check_path(path)
    if is_local(path):
        p = Path(path).expanduser()
        try:
            if p.is_file():
                loaded = ds.load_dataset(FILE_FORMATS[p.suffix], data_files={"train": str(p)})
            elif (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
                loaded = ds.load_from_disk(str(p))
            else:
                loaded = ds.load_dataset(str(p / name if name and (p / name).is_dir() else p))
        except errors as exc:
            raise ConfigError(f"task.options.path: cannot read a dataset from {p} ({_reason(exc)})") from None
    else:
        try:
            loaded = ds.load_dataset(path, name)
        except errors as exc:
            raise ConfigError(
                f"task.options.path: cannot load dataset {path!r} from the hub ({str(exc).splitlines()[0]}); "
                "offline, set task.options.path to local files: a .jsonl/.parquet file, a folder of them "
                "(train.jsonl, test.jsonl) or a save_to_disk folder"
            ) from None
    if isinstance(loaded, ds.Dataset):
        loaded = {"train": loaded}
    return {split: d.to_list() for split, d in loaded.items()}


def assign_splits(available: dict[str, list[dict]], splits: dict, val_size: int, test_size: int,
                  split_seed: int) -> dict[str, list[dict]]:
    """The task's train/val/test rows: each mapped to a dataset split, or carved from train (module doc)."""
    for ours, theirs in splits.items():
        if theirs is not None and theirs not in available:
            raise ConfigError(f"task.options.splits.{ours}: the dataset has no split {theirs!r} "
                              f"(it has {', '.join(sorted(available))}; null derives it from train)")
    train = available[splits["train"]]
    carve = {"test": test_size if splits["test"] is None else 0, "val": val_size if splits["val"] is None else 0}
    if sum(carve.values()) and sum(carve.values()) >= len(train):
        raise ConfigError(f"task.options.val_size/test_size: {carve['val']} + {carve['test']} rows derived from "
                          f"a train split of only {len(train)} rows")
    order = np.random.default_rng(split_seed).permutation(len(train))
    out, start = {}, 0
    for split in ("test", "val"):
        if splits[split] is None:
            out[split] = [train[i] for i in order[start:start + carve[split]].tolist()]
            start += carve[split]
        else:
            out[split] = available[splits[split]]
    taken = set(order[:start].tolist())
    out["train"] = [r for i, r in enumerate(train) if i not in taken]
    return out


class DatasetTask(Task):
    """A task over a public dataset: rows in the dataset's own schema; subclasses give prompt and reward."""

    default_path: str = ""
    default_name: str | None = None
    default_splits: dict = {"train": "train", "val": None, "test": "test"}
    columns: tuple = ()  # the fields prompt and reward read, checked once at load
    max_new_tokens = 512  # the paper's generation budget (Appendix G.1)

    def __init__(self, path: str | None = None, name: str | None = None, splits: dict | None = None,
                 val_size: int = 500, test_size: int = 500, split_seed: int = 0):
        if not isinstance(splits or {}, dict):
            raise ConfigError(f"task.options.splits: expected a mapping of train/val/test, got {splits!r}")
        unknown = set(splits or {}) - set(SPLITS)
        if unknown:
            raise ConfigError(f"task.options.splits: unknown split(s) {sorted(unknown)}; known: {', '.join(SPLITS)}")
        mapping = {**self.default_splits, **(splits or {})}
        if mapping["train"] is None:
            raise ConfigError("task.options.splits.train: must name a split of the dataset")
        for key, value in (("val_size", val_size), ("test_size", test_size)):
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"task.options.{key}: expected an integer >= 0, got {value!r}")
        self.source = (path or self.default_path, self.default_name if name is None else name)
        check_path(self.source[0])
        self._carving = (mapping, val_size, test_size, split_seed)
        self._splits: dict[str, list[dict]] | None = None  # read on first use

    def __getstate__(self) -> dict:
        """The task's rules without its rows (a worker process that scores rewards needs no data)."""
        return dict(self.__dict__, _splits=None)

    def loaded(self) -> dict[str, list[dict]]:
        """The rows of every split, read and assigned on first use (module doc); the columns are checked then."""
        if self._splits is None:
            splits = assign_splits(load_splits(*self.source), *self._carving)
            for split, rows in splits.items():
                missing = [c for c in self.columns if rows and c not in rows[0]]
                if missing:
                    raise ConfigError(f"task.options.path: {self.name} needs columns {', '.join(self.columns)}; "
                                      f"the {split} rows have {', '.join(rows[0])}")
            self._splits = splits
        return self._splits

    def rows(self, split: str) -> list[dict]:
        check_split(split)
        rows = self.loaded()[split]
        if not rows:
            raise ConfigError(f"task.options: the {self.name} {split} split is empty "
                              f"(val_size/test_size derive it from train, splits.{split} names a dataset split)")
        return [dict(r) for r in rows]

