"""The HDF5 file of a job, written by rank 0 and readable while it is written (HDF5 SWMR).

Under SWMR the writer may only extend and overwrite datasets that exist, so a file's whole layout is declared
before writing starts. The train log's layout is documented in the README ("HDF5 log schema"); `analysis` reads
only that, as an SWMR reader (`analysis.hdf5.open_file`, which es_hpc's readers use too).
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from analysis.hdf5 import open_file

from ..config import ConfigError

LIBVER = ("v110", "latest")  # the oldest file format with SWMR: HDF5 >= 1.10 reads these files
Tables = dict[str, dict[str, tuple[tuple[int, ...], type]]]  # group -> column -> (row shape, dtype)


class H5Log:
    """One job's file: `tables` are appended a row at a time (chunked, resizable along the first axis, created
    empty), `layout(f)` creates everything else (groups, datasets written by index, attributes); both before
    SWMR writing starts. SWMR readers see each row once it is flushed (one that keeps the file open: after a
    `refresh()` of the dataset)."""

    def __init__(self, path: Path, attrs: dict, tables: Tables, layout: Callable[[h5py.File], None] | None = None,
                 resume_iteration: int | None = None):
        self.path, self.tables = Path(path), tables
        self._writer = claim_writer(self.path)
        try:
            if resume_iteration is None:
                self._create(attrs, layout)
            else:
                self._resume(resume_iteration)
        except BaseException:
            self._release()
            raise

    def _create(self, attrs: dict, layout) -> None:
        """A new file: root attributes, `layout`, the empty tables, then SWMR writing."""
        if self.path.exists():
            raise FileExistsError(f"--out: {self.path} already exists; pass --resume or choose a new --out")
        self.f = h5py.File(self.path, "w", libver=LIBVER)
        for key, value in attrs.items():
            self.f.attrs[key] = str(value) if isinstance(value, str) else value  # plain str: TorchVersion is a subclass
        if layout:
            layout(self.f)
        for name, (shape, dtype) in self._columns():
            self.f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(64, *shape))
        self.f.swmr_mode = True

    def _columns(self):
        """(dataset name, (row shape, dtype)) of every declared table column."""
        return ((f"{group}/{key}", spec) for group, columns in self.tables.items() for key, spec in columns.items())

    def _resume(self, iteration: int) -> None:
        """A copy of the file with `resumed_at` recorded and the rows after the checkpoint dropped, put in SWMR mode
        and only then renamed over the old one. A copy, because HDF5 refuses to open the file of a killed SWMR writer
        for writing (its superblock still marks it open); readers of the old file keep a consistent one."""
        tmp = self.path.with_name(f".{self.path.name}.resume{os.getpid()}")
        f = self.f = h5py.File(tmp, "w", libver=LIBVER)
        try:
            with open_file(self.path) as old:
                for key in old.attrs:
                    f.attrs.create(key, old.attrs[key], dtype=old.attrs.get_id(key).dtype)
                for name in old:
                    old.copy(old[name], f, name=name)
            for name, (shape, dtype) in self._columns():
                ds = f.get(name)
                if not isinstance(ds, h5py.Dataset) or ds.shape[1:] != tuple(shape) or ds.dtype != dtype:
                    raise ConfigError(f"{name}: {self.path} holds no rows of shape {tuple(shape)} and dtype "
                                      f"{np.dtype(dtype)}; resume with the configuration it was written with")
            f.attrs["resumed_at"] = np.append(f.attrs.get("resumed_at", np.zeros(0, np.int64)), iteration)
            self._truncate(iteration)
            f.swmr_mode = True
        except BaseException:
            f.close()
            tmp.unlink()
            raise
        os.replace(tmp, self.path)

    def _truncate(self, iteration: int) -> None:
        """Drop what was logged after the checkpoint we resume from, so the file equals an unbroken run."""
        if "train/iteration" in self.f:
            self._resize_group("train", int(np.searchsorted(self.f["train/iteration"][:], iteration)))
        if "eval/iteration" in self.f:
            self._resize_group("eval", int(np.searchsorted(self.f["eval/iteration"][:], iteration, side="right")))

    def _resize_group(self, group: str, n: int) -> None:
        def visit(_name, obj):
            if isinstance(obj, h5py.Dataset):
                obj.resize(n, axis=0)
        self.f[group].visititems(visit)

    def append(self, group: str, row: dict) -> None:
        """Append one row to table `group`: a value for each of its declared columns, then flush."""
        columns = self.tables.get(group, {})
        if row.keys() != columns.keys():
            raise KeyError(f"{self.path}: a row of {group}/ has columns {sorted(row)}; the layout declares "
                           f"{sorted(columns)}")
        for key, value in row.items():
            ds = self.f[f"{group}/{key}"]
            n = ds.shape[0]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        self.f.flush()

    def close(self) -> None:
        self.f.close()
        self._release()

    def _release(self) -> None:
        """Give up the writer lock; its file goes too (after a crash it stays, unlocked and harmless)."""
        if self._writer is not None:
            writer_lock_path(self.path).unlink(missing_ok=True)
            os.close(self._writer)
            self._writer = None


def writer_lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.writer")


def claim_writer(path: Path) -> int | None:
    """An exclusive lock on `.NAME.writer` beside the file, held while this process writes it: SWMR leaves the file
    itself unlocked, so this is what stops a second writer (a --resume while the job still runs). The kernel drops
    it when the process dies, kill -9 included. None where the file system has no flock (then unchecked)."""
    fd = os.open(writer_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FileExistsError(f"--out: {path} is being written by a job that is still running; "
                              "resume only after it has ended") from None
    except OSError:
        os.close(fd)
        return None
    return fd
