#!/usr/bin/env bash
# ES training as a Slurm batch job: one rank per task, tasks per node = GPUs per node (CPU nodes: any number).
#   sbatch slurm/es_train.sh CONFIG [train arguments...]
#   sbatch -N 4 --ntasks-per-node=4 --gpus-per-node=4 slurm/es_train.sh configs/tiny.yaml --set es.population=64
# Environment (sbatch passes the submitting shell's environment on; activate the project venv first):
#   RUN=DIR            run directory (default runs/slurm-JOBID); a requeued job resumes from its checkpoint there
#   LAUNCHER=torchrun  one torchrun per node (c10d rendezvous on the first node) instead of srun starting the ranks
#   MAX_RESTARTS=N     requeues after a time-limit warning (default 3)
#   PYTHON=PATH        the interpreter with es_hpc installed (default: python on PATH)
#SBATCH --job-name=es_train
#SBATCH --nodes=1                  # nodes; override with sbatch -N
#SBATCH --ntasks-per-node=1        # ranks per node: the node's GPU count (and --gpus-per-node=G); CPU nodes: any
#SBATCH --cpus-per-task=8          # CPU threads per rank (es_hpc's runtime.threads=0 uses the cores it is given)
##SBATCH --gpus-per-node=4         # GPU nodes: drop one '#' and give --ntasks-per-node the same number
#SBATCH --time=04:00:00            # wall-clock limit of one attempt; a requeued attempt gets it again
#SBATCH --signal=B:USR1@120        # 120 s before the limit, SIGUSR1 to this batch shell: checkpoint and requeue
#SBATCH --requeue                  # the job may be put back in the queue (by the trap below, or a node failure)
#SBATCH --open-mode=append         # a requeued attempt appends to the same output file
#SBATCH --output=slurm-%x-%j.out   # in the submit directory: Slurm cannot create RUN before the job starts
set -euo pipefail

CONFIG=${1:?usage: sbatch slurm/es_train.sh CONFIG [train arguments...]}
shift
RUN=${RUN:-runs/slurm-$SLURM_JOB_ID}
LAUNCHER=${LAUNCHER:-srun}
MAX_RESTARTS=${MAX_RESTARTS:-3}
PYTHON=${PYTHON:-python}
mkdir -p "$RUN"
RESUME=()
[ -f "$RUN/checkpoints/latest" ] && RESUME=(--resume)   # a requeued job continues from its last checkpoint
TRAIN=(-m es_hpc train --config "$CONFIG" --out "$RUN" "${RESUME[@]}")
echo "es_train: job $SLURM_JOB_ID attempt ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST: $SLURM_NTASKS ranks," \
     "launcher $LAUNCHER, run $RUN ${RESUME[*]}"

# Time-limit warning: pass it to the ranks (every step, not this shell); each finishes its iteration, checkpoints
# and exits 75. Then this job is requeued, up to MAX_RESTARTS times.
WARNED=0
warned() {
    WARNED=1
    echo "es_train: SIGUSR1, stopping the ranks at the next iteration"
    scancel --signal=USR1 "$SLURM_JOB_ID" || true
}
trap warned USR1

export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}   # Slurm >= 22.05: srun no longer inherits --cpus-per-task
if [ "$LAUNCHER" = torchrun ]; then
    # One torchrun per node starts that node's ranks; it forwards SIGUSR1 to them and waits for their checkpoint.
    HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    PER_NODE=$(( SLURM_NTASKS / SLURM_NNODES ))
    srun --wait=60 --whole --ntasks="$SLURM_NNODES" --ntasks-per-node=1 \
        "$PYTHON" -m torch.distributed.run --nnodes="$SLURM_NNODES" --nproc_per_node="$PER_NODE" \
        --rdzv_backend=c10d --rdzv_endpoint="$HEAD:$(( 30000 + SLURM_JOB_ID % 10000 ))" --rdzv_id="$SLURM_JOB_ID" \
        --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout=110 \
        "${TRAIN[@]}" "$@" &
else
    # srun starts every rank; they join torch.distributed from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the
    # node list (dist.backend auto picks torch for a multi-task srun step; master: first node, port from the job
    # id). Once one rank ends, the others get 60 s to follow.
    srun --wait=60 "$PYTHON" "${TRAIN[@]}" "$@" &
fi
STEP=$!
while :; do
    RC=0; wait "$STEP" || RC=$?
    (( RC > 128 )) && kill -0 "$STEP" 2>/dev/null && continue   # the trap interrupted `wait`; the step still runs
    break
done
if (( WARNED && RC != 0 )); then
    if (( ${SLURM_RESTART_COUNT:-0} < MAX_RESTARTS )); then
        echo "es_train: step exited $RC; requeueing (restart $(( ${SLURM_RESTART_COUNT:-0} + 1 )) of $MAX_RESTARTS)"
        scontrol requeue "$SLURM_JOB_ID" && exit 0
    fi
    echo "es_train: step exited $RC; not requeued (restarts: ${SLURM_RESTART_COUNT:-0}, MAX_RESTARTS=$MAX_RESTARTS)"
fi
exit "$RC"
