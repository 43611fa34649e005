#!/usr/bin/env bash
# Backend benchmark: the same ES run (tiny default, evaluation and checkpoints off) with the transformers and the
# vLLM backend in the vLLM environment, then seconds per iteration by phase from each run's HDF5 log.
#   bash launch/bench_backends.sh [ITERATIONS] [MODEL]     (default 10 iterations, embedded:tiny)
# Generation is compared as such: the transformers backend's teacher-forced fast path is switched off.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/vllm_env.sh
PY=.venv-vllm/bin/python
ITERS=${1:-10}
MODEL=${2:-embedded:tiny}
OUT=${OUT:-runs/bench-backends-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
SETS=(--set model.path="$MODEL" --set train.eval_every=0 --set train.keep_best=false --set train.checkpoint_every=0
      --set train.iterations="$ITERS" --set generation.exact_fast_path=false)
for backend in transformers vllm; do
    start=$(date +%s)
    $PY -m es_hpc train --config configs/tiny.yaml --out "$OUT/$backend" "${SETS[@]}" \
        --set generation.backend=$backend > "$OUT/$backend.log" 2>&1
    echo "$backend: whole job $(( $(date +%s) - start )) s (model load or engine start included)"
done
$PY - "$OUT" <<'EOF'
import sys
from pathlib import Path

import h5py
import numpy as np

out = Path(sys.argv[1])
phases = ("perturb", "generate", "score", "restore", "update")
print(f"{'backend':<13}{'s/iter':>8}" + "".join(f"{p:>10}" for p in phases) + f"{'tokens/s':>10}")
for backend in ("transformers", "vllm"):
    with h5py.File(out / backend / "es_log.h5", "r") as f:
        t = {p: f[f"train/time/{p}"][1:] for p in phases}  # the first iteration warms caches: left out
        tokens = f["train/tokens"][1:]
    total = sum(v.mean() for v in t.values())
    print(f"{backend:<13}{total:>8.2f}" + "".join(f"{t[p].mean():>10.3f}" for p in phases)
          + f"{tokens.mean() / t['generate'].mean():>10.0f}")
EOF
