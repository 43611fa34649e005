"""Reading es_hpc's HDF5 files, finished or still being written (the jobs write them as HDF5 SWMR writers)."""
from __future__ import annotations

import h5py
import numpy as np


def open_file(path) -> h5py.File:
    """Open read-only as an SWMR reader: sees every row a running job has flushed, and is the only open HDF5
    allows on the file of a killed job (its superblock still says open for writing); finished files open alike."""
    return h5py.File(path, "r", swmr=True)


def complete_rows(group: h5py.Group, names) -> dict[str, np.ndarray]:
    """Columns `names` of an appended table, cut to the rows all of them hold (a live writer extends the columns
    one after another, so a reader can see some a row longer than others)."""
    n = min(group[name].shape[0] for name in names)
    return {name: group[name][:n] for name in names}
