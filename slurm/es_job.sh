#!/usr/bin/env bash
# The checkpoint jobs as a Slurm batch job, one rank per task: the reward probe (paper Appendix G), CLSS probe
# trajectories (Algorithm 2, step 1) and SLQ curvature spectra (Algorithm 3, Appendix G.10). Training: es_train.sh.
#   sbatch slurm/es_job.sh probe CONFIG [probe arguments...]
#   sbatch slurm/es_job.sh clss CONFIG CHECKPOINT [clss arguments...]
#   sbatch slurm/es_job.sh slq CONFIG CHECKPOINT [slq arguments...]
# Examples:
#   sbatch -N 2 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_job.sh probe configs/tiny_probe.yaml --set model.path=DIR
#       then: python -m analysis.best_of_n RUN/probe.h5 --out RUN/figures
#   sbatch --no-requeue -N 2 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_job.sh clss configs/tiny_clss.yaml \
#       runs/a/checkpoints/best
#       then fit: python -m analysis.clss RUN/clss.h5
#   sbatch --no-requeue -N 1 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_job.sh slq configs/tiny_slq.yaml \
#       runs/a/checkpoints/best --set slq.operator=stein
#       then: python -m analysis.slq RUN/slq.h5 [more runs' files ...] --out FIGURES
# Environment (sbatch passes the submitting shell's environment on; activate the project venv first):
#   RUN=DIR      output directory (default runs/SUBCOMMAND-JOBID). probe: a probe file already there with the same
#                configuration is resumed (stored candidates are skipped), one of another configuration is refused.
#                clss, slq: it must not hold a clss (slq) file already
#   PYTHON=PATH  the interpreter with es_hpc installed (default: python on PATH)
# Requeue: the job is requeueable (--requeue below, for the probe), and a requeued attempt appends to the output.
#   probe: requeue-safe. The file is flushed after every chunk of one candidate per rank, so a requeued or
#          resubmitted job (same RUN) continues where the last one stopped and loses at most the chunk in flight.
#   clss, slq: not resumable, so submit them with --no-requeue. A requeued attempt of theirs (SLURM_RESTART_COUNT > 0)
#          stops at once with a message and exit status 1, touching nothing: the first attempt's file would be
#          refused anyway. CLSS flushes its file after each trajectory (unfinished ones stay NaN, which analysis.clss
#          counts as incomplete); SLQ's rank 0 writes the coefficients once all probes are done.
# SLQ: probes are dealt over ranks (slq.probes >= ranks keeps every rank busy); the Stein operator's M candidates
# too. Memory per rank: slq.steps Lanczos vectors of the perturbed parameters in float64 (steps x D x 8 bytes).
#SBATCH --job-name=es_job
#SBATCH --nodes=1                  # nodes; override with sbatch -N
#SBATCH --ntasks-per-node=1        # ranks per node: the node's GPU count (and --gpus-per-node=G); CPU nodes: any
#SBATCH --cpus-per-task=8          # CPU threads per rank (runtime.threads=0 uses the cores it is given)
##SBATCH --gpus-per-node=4         # GPU nodes: drop one '#' and give --ntasks-per-node the same number
#SBATCH --time=04:00:00            # override with sbatch -t (clss and slq jobs are usually shorter)
#SBATCH --requeue                  # a node failure puts the job back in the queue; a probe resumes from its file
#SBATCH --open-mode=append         # a requeued attempt appends to the same output file
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

USAGE="usage: sbatch slurm/es_job.sh {probe CONFIG | clss CONFIG CHECKPOINT | slq CONFIG CHECKPOINT} [arguments...]"
usage() { echo "$USAGE" >&2; exit 2; }
SUB=${1:-}
case "$SUB" in
    probe) (( $# >= 2 )) || usage; CONFIG=$2; CHECKPOINT=""; shift 2 ;;
    clss|slq) (( $# >= 3 )) || usage; CONFIG=$2; CHECKPOINT=$3; shift 3 ;;
    *) usage ;;
esac
RUN=${RUN:-runs/$SUB-$SLURM_JOB_ID}
PYTHON=${PYTHON:-python}
if [ "$SUB" != probe ] && (( ${SLURM_RESTART_COUNT:-0} > 0 )); then
    echo "es_$SUB: job $SLURM_JOB_ID attempt $SLURM_RESTART_COUNT is a requeue; $SUB does not resume, so it stops" \
         "here (submit it with --no-requeue; resubmit with a new RUN, not $RUN)" >&2
    exit 1
fi
mkdir -p "$RUN"
echo "es_$SUB: job $SLURM_JOB_ID attempt ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST: $SLURM_NTASKS ranks," \
     "${CHECKPOINT:+checkpoint $CHECKPOINT, }run $RUN"
ARGS=(--config "$CONFIG")
[ -z "$CHECKPOINT" ] || ARGS+=(--checkpoint "$CHECKPOINT")

export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}   # Slurm >= 22.05: srun no longer inherits --cpus-per-task
# srun starts every rank; they join torch.distributed from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the node
# list (dist.backend auto). Once one rank ends, the others get 60 s to follow.
exec srun --wait=60 "$PYTHON" -m es_hpc "$SUB" "${ARGS[@]}" --out "$RUN" "$@"
