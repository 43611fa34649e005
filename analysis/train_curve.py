"""Reward curve and summary of a train log: `python -m analysis.train_curve LOG.h5 [--png OUT.png] [--json]`.

Reads only the documented HDF5 schema (README, "HDF5 log schema"), of a finished run or of one still running
(the rows flushed so far).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from analysis.hdf5 import complete_rows, open_file


def read(path: str) -> tuple[dict, dict, dict]:
    """The log's root attributes and the train/ and eval/ columns used here, each table cut to its complete rows
    (of a running job: those flushed so far)."""
    with open_file(path) as f:
        train = complete_rows(f["train"], ("iteration", "rewards", "wall", "baseline_drift"))
        ev = complete_rows(f["eval"], [k for k in ("iteration", "reward", "select_reward") if k in f["eval"]])
        attrs = dict(f.attrs)
    if not len(ev["iteration"]):
        raise ValueError("no evaluation logged yet")
    return attrs, train, ev


def summarize(path: str) -> dict:
    """Start, best-by-selection and final held-out reward, with the gain of the kept checkpoint."""
    attrs, train, ev = read(path)
    cfg = json.loads(attrs["config"])
    it, reward = ev["iteration"], ev["reward"].astype(float)
    select = ev["select_reward"].astype(float) if "select_reward" in ev else None
    out = {
        "file": path,
        "iterations_logged": len(train["iteration"]),
        "world_size": int(attrs["world_size"]),
        "wall_seconds": float(train["wall"][-1]) if len(train["wall"]) else 0.0,
        "eval_split": cfg["train"]["eval_split"],
        "initial_reward": float(reward[0]),
        "final_reward": float(reward[-1]),
        "max_baseline_drift": float(np.nanmax(np.abs(train["baseline_drift"]), initial=0.0)),
    }
    k = int(np.argmax(select)) if select is not None else len(reward) - 1
    out.update(kept_iteration=int(it[k]), kept_reward=float(reward[k]), gain=float(reward[k] - reward[0]))
    if select is not None:
        out.update(select_split=cfg["train"]["select_split"], kept_select_reward=float(select[k]))
    return out


def plot(path: str, png: str) -> None:
    """Training reward (population mean and max per iteration) and held-out reward against iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attrs, train, ev = read(path)
    cfg = json.loads(attrs["config"])
    t, rewards = train["iteration"], train["rewards"]
    it, reward, select = ev["iteration"], ev["reward"], ev.get("select_reward")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(t, rewards.mean(1), lw=0.8, color="0.6", label="train: population mean")
    ax.plot(t, rewards.max(1), lw=0.5, color="0.8", label="train: population max")
    ax.plot(it, reward, "o-", color="C0", label=f"held-out ({cfg['train']['eval_split']})")
    if select is not None:
        ax.plot(it, select, "s--", color="C1", ms=3, label=f"selection ({cfg['train']['select_split']})")
        k = int(np.argmax(select))
        ax.axvline(it[k], color="C1", lw=0.8, ls=":", label=f"kept checkpoint (iteration {it[k]})")
    es = cfg["es"]
    ax.set(xlabel="ES iteration", ylabel="reward",
           title=f"{cfg['task']['name']}: N={es['population']} sigma={es['sigma']:g} alpha={es['alpha']:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.train_curve", description=__doc__)
    p.add_argument("log", help="HDF5 log of a train run")
    p.add_argument("--png", help="write the reward curve here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    try:
        s = summarize(args.log)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {args.log}: not a readable train log ({exc})", file=sys.stderr)
        return 2
    if args.png:
        plot(args.log, args.png)
    if args.json:
        print(json.dumps(s))
    else:
        kept = f"kept iteration {s['kept_iteration']}" + (
            f" (best {s['select_split']} {s['kept_select_reward']:.3f})" if "select_split" in s else "")
        # the first line is the run's result, the same on every machine; the second its timing, which is not
        print(f"{s['iterations_logged']} iterations on {s['world_size']} rank(s); "
              f"{s['eval_split']} reward {s['initial_reward']:.3f} -> {s['kept_reward']:.3f} "
              f"({s['gain']:+.3f}, {kept}); final {s['final_reward']:.3f}; max baseline drift {s['max_baseline_drift']:g}")
        print(f"wall time {s['wall_seconds']:.0f} s of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
