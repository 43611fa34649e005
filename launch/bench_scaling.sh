#!/usr/bin/env bash
# Scaling benchmark: the tiny default and a 4.2M-parameter random model of the same architecture, each as 1 rank
# with 2 threads (every core), 1 rank with 1 thread and 2 ranks with 1 thread each, then the table (s/iteration,
# speed-ups against both 1-rank runs, bytes communicated per iteration). Run it on an otherwise idle machine.
#   bash launch/bench_scaling.sh [ITERATIONS]      (default 20; evaluation and checkpoints off)
set -euo pipefail
. "$(dirname "$0")/env.sh"
ITERS=${1:-20}
OUT=${OUT:-runs/bench-scaling-$(date +%Y%m%d-%H%M%S)}
BIG=${BIG:-.cache/random-h256}
[ -f "$BIG/config.json" ] || python -m es_hpc make-random-model --out "$BIG" --hidden 256 --layers 4 > /dev/null
mkdir -p "$OUT"
QUIET=(--set train.eval_every=0 --set train.keep_best=false --set train.checkpoint_every=0 --set train.iterations="$ITERS")
for model in embedded:tiny "$BIG"; do
    name=$(basename "${model#embedded:}")
    for threads in 2 1; do
        python -m es_hpc train --config configs/tiny.yaml --out "$OUT/$name-1x$threads" --set model.path="$model" \
            --set runtime.threads=$threads "${QUIET[@]}" > "$OUT/$name-1x$threads.log"
    done
    torchrun --standalone --nproc_per_node=2 -m es_hpc train --config configs/tiny.yaml --out "$OUT/$name-2" \
        --set model.path="$model" "${QUIET[@]}" > "$OUT/$name-2.log"
done
python -m analysis.scaling "$OUT"/*/es_log.h5
