"""Scaling table of train runs: `python -m analysis.scaling LOG.h5 [LOG.h5 ...] [--json]`.

Per run: ranks, threads per rank, perturbed parameters, median seconds per iteration (from `train/wall`, first
iteration dropped as warm-up), bytes communicated per iteration, and two speed-ups against 1-rank runs of the same
model: with the same threads per rank (rank scaling at equal per-rank resources) and with the most threads
(one process using every core).
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
            "threads": int(f.attrs["threads_per_rank"]),
            "parameters": int(f.attrs["perturbed_parameters"]),
            "iterations": len(wall),
            "bytes_per_iteration": float(np.median(f["train/comm_bytes"][:])),
        }
    steps = np.diff(wall)[1:] if len(wall) > 2 else np.diff(wall)
    row["seconds_per_iteration"] = float(np.median(steps)) if len(steps) else float("nan")
    return row


def table(rows: list[dict]) -> list[dict]:
    """Add each run's speed-ups over the 1-rank runs of the same model (None where there is no such run)."""
    one = {(r["model"], r["threads"]): r["seconds_per_iteration"] for r in rows if r["ranks"] == 1}
    for r in rows:
        same = one.get((r["model"], r["threads"]))
        most = max((k for k in one if k[0] == r["model"]), key=lambda k: k[1], default=None)
        r["speedup_same_threads"] = same / r["seconds_per_iteration"] if same else None
        r["speedup_all_threads"] = one[most] / r["seconds_per_iteration"] if most else None
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
    print("| ranks | threads / rank | perturbed parameters | s / iteration | speed-up vs 1 rank, same threads "
          "| speed-up vs 1 rank, most threads | bytes / iteration |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        same, most = (f"{r[k]:.2f}x" if r[k] else "-" for k in ("speedup_same_threads", "speedup_all_threads"))
        print(f"| {r['ranks']} | {r['threads']} | {r['parameters']:,} | {r['seconds_per_iteration']:.2f} | {same} | "
              f"{most} | {r['bytes_per_iteration']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
