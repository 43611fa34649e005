#!/usr/bin/env bash
# SLQ curvature spectra (paper Algorithm 3, Appendix G.10) of a checkpoint as a Slurm batch job; one rank per task.
#   sbatch slurm/es_slq.sh CONFIG CHECKPOINT [slq arguments...]
#   sbatch -N 1 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_slq.sh configs/tiny_slq.yaml runs/a/checkpoints/best \
#       --set slq.operator=stein
# Then: python -m analysis.slq RUN/slq.h5 [more runs' files ...] --out FIGURES
# Environment (sbatch passes the submitting shell's environment on; activate the project venv first):
#   RUN=DIR      output directory (default runs/slq-JOBID); it must not hold an slq file already
#   PYTHON=PATH  the interpreter with es_hpc installed (default: python on PATH)
# Probes are dealt over ranks (slq.probes >= ranks keeps every rank busy); the Stein operator's M candidates too.
# Memory per rank: slq.steps Lanczos vectors of the perturbed parameters in float64 (steps x D x 8 bytes) on the host.
# No requeue: rank 0 writes the coefficients once all probes are done.
#SBATCH --job-name=es_slq
#SBATCH --nodes=1                  # nodes; override with sbatch -N
#SBATCH --ntasks-per-node=1        # ranks per node: the node's GPU count (and --gpus-per-node=G); CPU nodes: any
#SBATCH --cpus-per-task=8          # CPU threads per rank (train.threads=0 uses the cores it is given)
##SBATCH --gpus-per-node=4         # GPU nodes: drop one '#' and give --ntasks-per-node the same number
#SBATCH --time=02:00:00
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch slurm/es_slq.sh CONFIG CHECKPOINT [slq arguments...]}
CHECKPOINT=${2:?usage: sbatch slurm/es_slq.sh CONFIG CHECKPOINT [slq arguments...]}
shift 2
RUN=${RUN:-runs/slq-$SLURM_JOB_ID}
PYTHON=${PYTHON:-python}
mkdir -p "$RUN"
echo "es_slq: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NTASKS ranks, checkpoint $CHECKPOINT, run $RUN"

export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}   # Slurm >= 22.05: srun no longer inherits --cpus-per-task
# srun starts every rank; they join torch.distributed from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the node
# list (dist.backend auto). Once one rank ends, the others get 60 s to follow.
exec srun --wait=60 "$PYTHON" -m es_hpc slq --config "$CONFIG" --checkpoint "$CHECKPOINT" --out "$RUN" "$@"
