"""The HDF5 log written by rank 0: appended and flushed every iteration, truncated and reused on resume.

The layout is documented in the README ("HDF5 log schema"); `analysis` reads only that.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


class H5Log:
    """One run's log file; datasets are chunked and resizable along their first (time) axis."""

    def __init__(self, path: Path, attrs: dict, resume_iteration: int | None = None):
        self.path = Path(path)
        if resume_iteration is None:
            if self.path.exists():
                raise FileExistsError(f"--out: {self.path} already exists; pass --resume or choose a new --out")
            self.f = h5py.File(self.path, "w")
            for key, value in attrs.items():
                self.f.attrs[key] = str(value) if isinstance(value, str) else value  # plain str: TorchVersion is a subclass
        else:
            self.f = h5py.File(self.path, "a")
            self.f.attrs["resumed_at"] = np.append(self.f.attrs.get("resumed_at", np.zeros(0, np.int64)), resume_iteration)
            self._truncate(resume_iteration)
        self.f.flush()

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
        """Append one row: each value becomes the next entry of dataset group/key (created on first use)."""
        for key, value in row.items():
            value = np.asarray(value)
            name = f"{group}/{key}"
            if name not in self.f:
                self.f.create_dataset(name, shape=(0, *value.shape), maxshape=(None, *value.shape),
                                      dtype=value.dtype, chunks=(64, *value.shape))
            ds = self.f[name]
            n = ds.shape[0]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        self.f.flush()

    def close(self) -> None:
        self.f.close()
