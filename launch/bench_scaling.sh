#!/usr/bin/env bash
# Scaling benchmark: the tiny default with 1 and 2 ranks, and a 3.3M-parameter random model of the same
# architecture with 1 and 2 ranks, then the table (s/iteration, speed-up, bytes communicated per iteration).
#   bash launch/bench_scaling.sh [ITERATIONS]      (default 20; evaluation and checkpoints off)
set -euo pipefail
. "$(dirname "$0")/env.sh"
tiny_model
ITERS=${1:-20}
OUT=${OUT:-runs/bench-scaling-$(date +%Y%m%d-%H%M%S)}
BIG=${BIG:-.cache/random-h256}
[ -f "$BIG/config.json" ] || python -m es_hpc make-random-model --out "$BIG" --hidden 256 --layers 4 > /dev/null
mkdir -p "$OUT"
QUIET=(--set train.eval_every=0 --set train.keep_best=false --set train.checkpoint_every=0 --set train.iterations="$ITERS")
for model in "$ES_HPC_TINY_MODEL" "$BIG"; do
    name=$(basename "$model")
    python -m es_hpc train --config configs/tiny.yaml --out "$OUT/$name-1" --set model.path="$model" "${QUIET[@]}" > "$OUT/$name-1.log"
    torchrun --standalone --nproc_per_node=2 -m es_hpc train --config configs/tiny.yaml --out "$OUT/$name-2" \
        --set model.path="$model" "${QUIET[@]}" > "$OUT/$name-2.log"
done
python -m analysis.scaling "$OUT"/*/es_log.h5
