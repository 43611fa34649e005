#!/usr/bin/env bash
# The main job on the embedded default: set up, run ES on the shipped tiny model with 2 ranks (torchrun, CPU),
# then draw the reward curve and print a summary. Extra arguments go to `es_hpc train` (e.g. --set train.iterations=50).
set -euo pipefail
. "$(dirname "$0")/env.sh"
RUN=${RUN:-runs/quickstart-$(date +%Y%m%d-%H%M%S)}
NPROC=${NPROC:-2}
echo "[es_hpc] ES training with $NPROC ranks -> $RUN"
torchrun --standalone --nproc_per_node="$NPROC" -m es_hpc train \
    --config configs/tiny.yaml --out "$RUN" "$@"
python -m analysis.train_curve "$RUN/es_log.h5" --png "$RUN/reward_curve.png"
echo "[es_hpc] log: $RUN/es_log.h5  curve: $RUN/reward_curve.png  checkpoints: $RUN/checkpoints/"
