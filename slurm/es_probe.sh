#!/usr/bin/env bash
# Reward probe (paper Appendix G) as a Slurm batch job; one rank per task, candidates dealt over the ranks.
#   sbatch slurm/es_probe.sh CONFIG [probe arguments...]
#   sbatch -N 2 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_probe.sh configs/tiny_probe.yaml --set model.path=DIR
# Then: python -m analysis.best_of_n RUN/probe.h5 --out RUN/figures
# Environment (sbatch passes the submitting shell's environment on; activate the project venv first):
#   RUN=DIR      output directory (default runs/probe-JOBID); a probe file already there with the same
#                configuration is resumed (stored candidates are skipped), one of another configuration is refused
#   PYTHON=PATH  the interpreter with es_hpc installed (default: python on PATH)
# Requeue-safe: the file is flushed after every chunk of one candidate per rank, so a requeued or resubmitted job
# (same RUN) continues where the last one stopped and loses at most the chunk in flight.
#SBATCH --job-name=es_probe
#SBATCH --nodes=1                  # nodes; override with sbatch -N
#SBATCH --ntasks-per-node=1        # ranks per node: the node's GPU count (and --gpus-per-node=G); CPU nodes: any
#SBATCH --cpus-per-task=8          # CPU threads per rank (train.threads=0 uses the cores it is given)
##SBATCH --gpus-per-node=4         # GPU nodes: drop one '#' and give --ntasks-per-node the same number
#SBATCH --time=04:00:00
#SBATCH --requeue                  # a node failure puts the job back in the queue; it resumes from the file
#SBATCH --open-mode=append         # a requeued attempt appends to the same output file
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch slurm/es_probe.sh CONFIG [probe arguments...]}
shift
RUN=${RUN:-runs/probe-$SLURM_JOB_ID}
PYTHON=${PYTHON:-python}
mkdir -p "$RUN"
echo "es_probe: job $SLURM_JOB_ID attempt ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST: $SLURM_NTASKS ranks, run $RUN"

export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}   # Slurm >= 22.05: srun no longer inherits --cpus-per-task
# srun starts every rank; they join torch.distributed from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the node
# list (dist.backend auto). Once one rank ends, the others get 60 s to follow.
exec srun --wait=60 "$PYTHON" -m es_hpc probe --config "$CONFIG" --out "$RUN" "$@"
