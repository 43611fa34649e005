#!/usr/bin/env bash
# ES training as a Slurm batch job: one torchrun per node, one rank per GPU, c10d rendezvous on the first node.
#   sbatch slurm/es_train.sh CONFIG [train arguments...]      e.g. sbatch -N 4 slurm/es_train.sh configs/tiny.yaml
#SBATCH --job-name=es_train
#SBATCH --nodes=1                 # override with sbatch -N; ranks = nodes x tasks per node
#SBATCH --ntasks-per-node=1       # one torchrun launcher per node; it starts GPUS_PER_NODE ranks
#SBATCH --cpus-per-task=8         # CPU threads for the node's ranks (shared among them by es_hpc)
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%j.out     # Slurm does not create directories, so the log sits in the submit directory
set -euo pipefail

CONFIG=${1:?usage: sbatch slurm/es_train.sh CONFIG [train arguments...]}
shift
RUN=${RUN:-runs/slurm-$SLURM_JOB_ID}
mkdir -p "$RUN"
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}
GPUS_PER_NODE=$(( GPUS_PER_NODE > 0 ? GPUS_PER_NODE : 1 ))   # CPU nodes: one rank per node
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RESUME=()
[ -f "$RUN/checkpoints/latest" ] && RESUME=(--resume)   # a requeued job continues from its last checkpoint

srun --kill-on-bad-exit=1 torchrun \
    --nnodes="$SLURM_NNODES" --nproc_per_node="$GPUS_PER_NODE" \
    --rdzv_backend=c10d --rdzv_endpoint="$HEAD:29500" --rdzv_id="$SLURM_JOB_ID" \
    -m es_hpc train --config "$CONFIG" --out "$RUN" "${RESUME[@]}" "$@"
