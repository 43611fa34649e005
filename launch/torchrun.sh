#!/usr/bin/env bash
# Workstation launch: launch/torchrun.sh NPROC CONFIG RUN_DIR [train arguments...]
# One process per rank on this machine (gloo on CPU, NCCL on GPUs); the population is split across ranks.
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 NPROC CONFIG RUN_DIR [--set k=v ...] [--resume]" >&2; exit 2; fi
NPROC=$1 CONFIG=$2 RUN=$3; shift 3
exec torchrun --standalone --nproc_per_node="$NPROC" -m es_hpc train --config "$CONFIG" --out "$RUN" "$@"
