"""Scaling table of train runs: `python -m analysis.scaling LOG.h5 [LOG.h5 ...] [--json]`.

Per run: ranks, perturbed parameters, median seconds per iteration (from `train/wall`, first iteration dropped
as warm-up), speed-up against the 1-rank run of the same model, and bytes communicated per iteration.
"""
from __future__ import annotations

import argparse
import json
import sys

import h5py
import numpy as np


def measure(path: str) -> dict:
    with h5py.File(path, "r") as f:
        wall = f["train/wall"][:]
        row = {
            "file": path,
            "model": str(f.attrs["model"]),
            "ranks": int(f.attrs["world_size"]),
            "parameters": int(f.attrs["perturbed_parameters"]),
            "iterations": len(wall),
            "bytes_per_iteration": float(np.median(f["train/comm_bytes"][:])),
        }
    steps = np.diff(wall)[1:] if len(wall) > 2 else np.diff(wall)
    row["seconds_per_iteration"] = float(np.median(steps)) if len(steps) else float("nan")
    return row


def table(rows: list[dict]) -> list[dict]:
    """Add each run's speed-up over the 1-rank run of the same model (when there is one)."""
    one = {r["model"]: r["seconds_per_iteration"] for r in rows if r["ranks"] == 1}
    for r in rows:
        r["speedup"] = one[r["model"]] / r["seconds_per_iteration"] if r["model"] in one else None
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.scaling", description=__doc__)
    p.add_argument("logs", nargs="+")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        rows = table([measure(x) for x in args.logs])
    except (OSError, KeyError) as exc:
        print(f"error: not a readable train log ({exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| ranks | perturbed parameters | s / iteration | speed-up | bytes / iteration |")
    print("|---|---|---|---|---|")
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        print(f"| {r['ranks']} | {r['parameters']:,} | {r['seconds_per_iteration']:.2f} | {speed} | "
              f"{r['bytes_per_iteration']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
