#!/usr/bin/env bash
# Workstation launch through MPI: launch/mpirun.sh NPROC CONFIG RUN_DIR [train arguments...]
# Runs NPROC ranks of `python -m es_hpc train` under mpirun; the "auto" communicator sees mpirun's environment
# and uses MPI (mpi4py: `bash tests/infra/install_mpi.sh` installs Open MPI and mpi4py). Options and why:
#   --bind-to none   Open MPI pins each rank to one core by default (np <= 2), which would squeeze torch's
#                    threads onto it; es_hpc sets the threads itself (runtime.threads, 0 = cores / ranks).
#   -x VAR           exports the environment that ranks need (PATH, the venv, PYTHONPATH, ES_HPC_*).
#   --allow-run-as-root  only when run as root (containers, CI): Open MPI refuses root without it.
#   --oversubscribe  lets NPROC exceed the cores Open MPI counts (harmless otherwise).
# MPIRUN overrides the mpirun executable; MPIRUN_ARGS adds options (e.g. "--hostfile hosts" for several nodes).
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 NPROC CONFIG RUN_DIR [--set k=v ...] [--resume]" >&2; exit 2; fi
NPROC=$1 CONFIG=$2 RUN=$3; shift 3
MPIRUN=${MPIRUN:-mpirun}
args=(-n "$NPROC" --bind-to none --oversubscribe)
if "$MPIRUN" --version 2>/dev/null | grep -q "Open MPI"; then
    [ "$(id -u)" -ne 0 ] || args+=(--allow-run-as-root)
    for var in PATH VIRTUAL_ENV PYTHONPATH PYTHONUNBUFFERED ES_HPC_NATIVE_DIR HF_HOME; do
        [ -z "${!var+x}" ] || args+=(-x "$var")
    done
else  # MPICH / Intel MPI (Hydra): no --oversubscribe, and the whole environment is passed by default
    args=(-n "$NPROC" -bind-to none)
fi
# shellcheck disable=SC2086
exec "$MPIRUN" "${args[@]}" ${MPIRUN_ARGS:-} "${PYTHON:-python}" -m es_hpc train --config "$CONFIG" --out "$RUN" "$@"
