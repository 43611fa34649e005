#!/usr/bin/env bash
# The paper's claims on the embedded model family, end to end and resumable (docs/reproduction.md):
#   bash launch/reproduce.sh [--reduced] [--out DIR] [--report DIR]
# Stages: the family's build facts, the best-of-N probe of every size (configs/reproduce/best_of_n.yaml), the
# antithetic curvature moments (moments.yaml), ES training with N = 10, 20, 30 on a fixed set (rise_decay.yaml), the
# hvp SLQ spectrum of every size (slq.yaml), then `python -m analysis.reproduce`, which writes the report and its
# figures from the files the stages wrote. A stage that completed is skipped on a rerun (DIR/STAGE/.done); an
# interrupted one resumes (probe, train) or restarts (slq). Each stage's wall time (of the attempt that completed
# it) goes into DIR/stages.tsv.
# --reduced: the same stages and report with small budgets (about 5 minutes on 2 cores; CI runs it); its verdicts
# are mostly inconclusive by design. Full plan: DIR defaults to runs/reproduce, the report to docs/; reduced:
# runs/reproduce-reduced and DIR/report. NPROC ranks per stage (default 2, torchrun).
set -euo pipefail
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }  # the header above
plan=full out="" report=""
while [ $# -gt 0 ]; do
    case $1 in
        --reduced) plan=reduced ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        --report) report=${2:?--report needs a directory}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: reproduce.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
out=$(absolute "${out:-$root/runs/reproduce$([ $plan = full ] || echo -reduced)}")
report=$(absolute "${report:-$([ $plan = full ] && echo "$root/docs" || echo "$out/report")}")
. "$root/launch/env.sh"
NPROC=${NPROC:-2}
SIZES=(xs s m l)
NS=(10 20 30)
if [ $plan = reduced ]; then
    PROBE=(--set probe.batches=5 --set probe.candidates=24 --set "probe.sigmas=[1.0e-3,3.0e-3,1.0e-2]")
    MOMENTS=(--set probe.batches=1 --set probe.candidates=16)
    TRAIN=(--set train.iterations=24 --set train.eval_every=8 --set train.eval_prompts=100)
    SLQ=(--set slq.probes=2 --set slq.steps=8 --set slq.prompts=8)
else
    PROBE=() MOMENTS=() TRAIN=() SLQ=()
fi

mkdir -p "$out"
if [ -f "$out/plan" ] && [ "$(cat "$out/plan")" != $plan ]; then
    echo "error: reproduce.sh: $out holds a $(cat "$out/plan") plan, not $plan; choose another --out" >&2
    exit 2
fi
echo $plan > "$out/plan"
model() { [ "$1" = m ] && echo embedded:tiny || echo "embedded:tiny-$1"; }
launch() { torchrun --standalone --nproc_per_node="$NPROC" -m es_hpc "$@"; }

# stage NAME COMMAND...: run COMMAND unless NAME completed before; record its wall time.
stage() {
    local name=$1; shift
    if [ -f "$out/$name/.done" ]; then
        echo "[reproduce] $name: complete, skipped"
        return
    fi
    echo "[reproduce] $name: $*"
    local t0; t0=$(date +%s.%N)
    "$@"
    awk -v n="$name" -v a="$t0" -v b="$(date +%s.%N)" -v p=$plan 'BEGIN { printf "%s\t%.1f\t%s\n", n, b - a, p }' \
        >> "$out/stages.tsv"
    touch "$out/$name/.done"
}
train() {  # train N: resume from the newest checkpoint of an interrupted run, else start afresh
    local dir=$out/train-N$1 resume=()
    if compgen -G "$dir/checkpoints/iter_*" > /dev/null; then resume=(--resume); else rm -rf "$dir"; fi
    launch train --config configs/reproduce/rise_decay.yaml --set es.population="$1" --out "$dir" \
        "${TRAIN[@]}" "${resume[@]}"
}
family() {  # the build facts (tiny_model.json) of every size, for the report's family table
    mkdir -p "$out/family"
    for s in "${SIZES[@]}"; do
        python - "$(model "$s")" "$out/family/$s.json" <<'PY'
import shutil, sys
from pathlib import Path
from es_hpc import models
shutil.copyfile(Path(models.resolve(sys.argv[1])) / models.FACTS, sys.argv[2])
PY
    done
}
slq() {  # slq SIZE: not resumable, so an interrupted spectrum starts again
    rm -rf "$out/slq-$1"
    launch slq --config configs/reproduce/slq.yaml --checkpoint "$(model "$1")" --out "$out/slq-$1" "${SLQ[@]}"
}

stage family family
for s in "${SIZES[@]}"; do
    stage probe-$s launch probe --config configs/reproduce/best_of_n.yaml --set model.path="$(model $s)" \
        --out "$out/probe-$s" "${PROBE[@]}"
done
for s in "${SIZES[@]}"; do
    stage moments-$s launch probe --config configs/reproduce/moments.yaml --set model.path="$(model $s)" \
        --out "$out/moments-$s" "${MOMENTS[@]}"
done
for n in "${NS[@]}"; do stage train-N$n train "$n"; done
for s in "${SIZES[@]}"; do stage slq-$s slq "$s"; done
python -m analysis.reproduce "$out" --report "$report"
