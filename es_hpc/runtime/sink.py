"""Rank 0's output: progress lines and the job's HDF5 file. On every other rank each call does nothing, so a job
body reports without asking which rank it runs on."""
from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from .h5log import H5Log


class Sink:
    """Lines to stdout (or `stream`) and rows, slices and datasets into one H5Log, all on rank 0 only."""

    def __init__(self, rank: int, cleanup: ExitStack, stream=None):
        self.active = rank == 0
        self.log: H5Log | None = None
        self._cleanup, self._stream = cleanup, stream

    def say(self, msg: str) -> None:
        if self.active:
            print(msg, file=self._stream or sys.stdout, flush=self._stream is not None)

    def open(self, path: Path, attrs: dict, tables: dict, layout=None, resume_iteration: int | None = None) -> None:
        """Create (or with resume_iteration reopen) the job's file on rank 0; closed with the job (H5Log)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.active:
            self.log = H5Log(path, attrs, tables, layout, resume_iteration)
            self._cleanup.callback(self.log.close)

    @property
    def file(self):
        """The open h5py.File on rank 0, None elsewhere (for reads that only rank 0 needs)."""
        return self.log.f if self.log else None

    def append(self, table: str, row: dict) -> None:
        """One row of an appended table (H5Log.append: flushed, visible to SWMR readers)."""
        if self.log:
            self.log.append(table, row)

    def write(self, group: str, index, **columns) -> None:
        """columns[key] into group/key at `index` of each pre-created dataset, in the order given, then flush:
        the last column is the one whose presence marks the entry complete."""
        if self.log:
            g = self.log.f[group]
            for key, value in columns.items():
                g[key][index] = value
            self.log.f.flush()

    def read(self, name: str) -> np.ndarray | None:
        """A dataset of the job's file as rank 0 sees it (None elsewhere)."""
        return self.log.f[name][()] if self.log else None
