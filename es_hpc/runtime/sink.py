"""Rank 0's output: progress lines, the job's HDF5 file and its live metrics (TensorBoard, W&B). On every other rank
each call does nothing, so a job body reports without asking which rank it runs on."""
from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from .h5log import H5Log
from .metrics import LiveMetrics


class Sink:
    """Lines to stdout (or `stream`) and rows, slices and datasets into one H5Log, the rows' scalars to the live
    metrics too once opened, all on rank 0 only."""

    def __init__(self, rank: int, cleanup: ExitStack, stream=None):
        self.active = rank == 0
        self.log: H5Log | None = None
        self.live: LiveMetrics | None = None
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

    def open_live(self, cfg, out_dir: Path, resume_iteration: int | None = None) -> None:
        """On rank 0, send the scalars of every row appended from here on to the writers `cfg.log` asks for
        (log.tensorboard, log.wandb), after the open log's rows from `resume_iteration` on: TensorBoard hides
        everything an earlier attempt logged from that step on, the evaluation at it included."""
        if self.active and (cfg.log.tensorboard or cfg.log.wandb):
            self.live = LiveMetrics(cfg, out_dir, resume_iteration)
            self._cleanup.callback(self.live.close)
            self.say(f"live metrics: {self.live.where()}")
            if resume_iteration is not None:
                self._resend(resume_iteration)

    def _resend(self, start: int) -> None:
        """Send the live writers the open log's rows of iteration `start` and later (after a resume: the
        evaluation at `start`)."""
        f = self.log.f
        for table, columns in self.log.tables.items():
            for i in np.flatnonzero(f[f"{table}/iteration"][()] >= start):
                self.live.add(table, {key: f[f"{table}/{key}"][i] for key in columns})

    @property
    def file(self):
        """The open h5py.File on rank 0, None elsewhere (for reads that only rank 0 needs)."""
        return self.log.f if self.log else None

    def append(self, table: str, row: dict) -> None:
        """One row of an appended table (H5Log.append: flushed, visible to SWMR readers)."""
        if self.log:
            self.log.append(table, row)
        if self.live:
            self.live.add(table, row)

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
