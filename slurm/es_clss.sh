#!/usr/bin/env bash
# CLSS probe trajectories (paper Algorithm 2, step 1) from a checkpoint as a Slurm batch job; one rank per task.
#   sbatch slurm/es_clss.sh CONFIG CHECKPOINT [clss arguments...]
#   sbatch -N 2 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_clss.sh configs/tiny_clss.yaml runs/a/checkpoints/best
# Then fit: python -m analysis.clss RUN/clss.h5
# Environment (sbatch passes the submitting shell's environment on; activate the project venv first):
#   RUN=DIR      output directory (default runs/clss-JOBID); it must not hold a clss file already
#   PYTHON=PATH  the interpreter with es_hpc installed (default: python on PATH)
# No requeue: the trajectories are short and the file is flushed after each one (unfinished ones stay NaN,
# which analysis.clss counts as incomplete seeds).
#SBATCH --job-name=es_clss
#SBATCH --nodes=1                  # nodes; override with sbatch -N
#SBATCH --ntasks-per-node=1        # ranks per node: the node's GPU count (and --gpus-per-node=G); CPU nodes: any
#SBATCH --cpus-per-task=8          # CPU threads per rank (train.threads=0 uses the cores it is given)
##SBATCH --gpus-per-node=4         # GPU nodes: drop one '#' and give --ntasks-per-node the same number
#SBATCH --time=02:00:00
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch slurm/es_clss.sh CONFIG CHECKPOINT [clss arguments...]}
CHECKPOINT=${2:?usage: sbatch slurm/es_clss.sh CONFIG CHECKPOINT [clss arguments...]}
shift 2
RUN=${RUN:-runs/clss-$SLURM_JOB_ID}
PYTHON=${PYTHON:-python}
mkdir -p "$RUN"
echo "es_clss: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NTASKS ranks, checkpoint $CHECKPOINT, run $RUN"

export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}   # Slurm >= 22.05: srun no longer inherits --cpus-per-task
# srun starts every rank; they join torch.distributed from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the node
# list (dist.backend auto). Once one rank ends, the others get 60 s to follow.
exec srun --wait=60 "$PYTHON" -m es_hpc clss --config "$CONFIG" --checkpoint "$CHECKPOINT" --out "$RUN" "$@"
