"""Digests of what every job computes, to prove that a change of code left the numbers alone.

    python tests/infra/fingerprints.py OUT_DIR            # run the jobs small, write OUT_DIR/fingerprints.json
    python tests/infra/fingerprints.py --compare A.json B.json

Runs the real CLI (train with 1 process, 2 torchrun ranks and 2 mpirun ranks; probe; clss; slq with both
operators; bench --reduced) with fixed seeds, and records a sha256 of every reward array and of the final
weights. Two checkouts whose files compare equal computed the same rewards and weights bit for bit. Only the CLI
and the HDF5 files are used, so the script runs unchanged against older commits.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from safetensors.numpy import load_file

TRAIN = ["es.population=4", "train.prompts_per_iteration=8", "train.eval_prompts=16", "train.eval_every=2",
         "train.checkpoint_every=2", "train.iterations=3", "train.keep_best=true"]
PROBE = ["probe.batches=1", "probe.candidates=4", "probe.pool_size=16", "probe.drift_every=2"]
CLSS = ["clss.populations=[2, 4]", "clss.steps=3", "clss.prompts_per_step=8"]
SLQ = {"hvp": ["slq.probes=2", "slq.steps=5", "slq.prompts=4"],
       "stein": ["slq.operator=stein", "slq.probes=2", "slq.steps=8", "slq.candidates=4", "slq.prompts=8"]}


def digest(array) -> str:
    a = np.ascontiguousarray(array)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def cli(args: list[str], launcher: list[str]) -> dict | None:
    """Run `LAUNCHER -m es_hpc ARGS`; the summary line of rank 0, if it printed one."""
    proc = subprocess.run(launcher + ["-m", "es_hpc", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def with_sets(args: list[str], sets: list[str]) -> list[str]:
    return args + [x for s in sets for x in ("--set", s)]


def h5_digests(path: Path, keys: list[str]) -> dict[str, str]:
    with h5py.File(path, "r") as f:
        return {k: digest(f[k][()]) for k in keys if k in f}


def weights(run_dir: Path) -> str:
    name = (run_dir / "checkpoints" / "latest").read_text().strip()
    tensors = load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))
    return digest(np.concatenate([tensors[k].reshape(-1).view(np.uint8) for k in sorted(tensors)]))


def train(out: Path, launcher: list[str], sets: list[str] = ()) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cli(with_sets(["train", "--config", "configs/tiny.yaml", "--out", str(out)], TRAIN + list(sets)), launcher)
    found = h5_digests(out / "es_log.h5", ["train/rewards", "train/seeds", "train/prompt_bits", "train/tokens",
                                           "eval/reward", "eval/select_reward"])
    return dict(found, weights=weights(out))


def run_all(out: Path) -> dict:
    py = [sys.executable]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    mpirun = ["mpirun", "-n", "2", "--oversubscribe", "--allow-run-as-root", sys.executable]
    result = {"train/1": train(out / "train1", py), "train/torchrun2": train(out / "torchrun2", torchrun)}
    if shutil.which("mpirun"):
        result["train/mpirun2"] = train(out / "mpirun2", mpirun, ["dist.backend=mpi"])
    cli(with_sets(["probe", "--config", "configs/tiny_probe.yaml", "--out", str(out / "probe")], PROBE), py)
    with h5py.File(out / "probe" / "probe.h5", "r") as f:
        result["probe"] = {k: digest(f[f"probe/{k}"][()]) for k in ("baseline/bits", "sigma0/batch0/reward",
                                                                   "sigma1/batch0/bits", "sigma2/batch0/reward")}
    ckpt = out / "train1" / "checkpoints" / "best"
    cli(with_sets(["clss", "--config", "configs/tiny_clss.yaml", "--checkpoint", str(ckpt),
                   "--out", str(out / "clss")], CLSS), py)
    result["clss"] = h5_digests(out / "clss" / "clss.h5", [f"clss/N{n}/{k}" for n in (2, 4)
                                                          for k in ("rewards", "distance", "population_mean")])
    for kind, sets in SLQ.items():
        cli(with_sets(["slq", "--config", "configs/tiny_slq.yaml", "--checkpoint", str(ckpt),
                       "--out", str(out / f"slq_{kind}")], sets), py)
        result[f"slq/{kind}"] = h5_digests(out / f"slq_{kind}" / "slq.h5", ["slq/alpha", "slq/beta",
                                                                          "slq/stein/rewards"])
    bench = cli(["bench", "--config", "configs/tiny.yaml", "--reduced", "--json"], py)
    result["bench"] = {"keys": sorted(bench), "perturbed_parameters": bench["perturbed_parameters"]}
    return result


def compare(a: Path, b: Path) -> int:
    one, two = json.loads(a.read_text()), json.loads(b.read_text())
    bad = [k for k in sorted(set(one) | set(two)) if one.get(k) != two.get(k)]
    for k in bad:
        print(f"differs: {k}\n  {one.get(k)}\n  {two.get(k)}")
    print(f"{len(one) - len(bad)} of {len(one)} jobs equal" + ("" if bad else ": the same numbers bit for bit"))
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--compare", action="store_true", help="compare two fingerprints.json files")
    args = p.parse_args()
    if args.compare:
        return compare(*args.paths)
    out = args.paths[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "fingerprints.json").write_text(json.dumps(run_all(out), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out / 'fingerprints.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
