#!/usr/bin/env bash
# Idempotent MPI setup for CI and workstations: Open MPI from Debian/Ubuntu apt when `mpirun` is missing, and
# mpi4py into the active Python environment when it does not import, at the version locked in requirements/cpu.txt.
# Safe to re-run: it installs nothing twice.
# Usage (inside the project venv): bash tests/infra/install_mpi.sh
set -euo pipefail
PY=${PYTHON:-python}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v mpirun >/dev/null; then
    echo "[install_mpi] apt: openmpi-bin libopenmpi-dev"
    apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)  # waits for a busy dpkg
    "${apt[@]}" update -qq
    "${apt[@]}" install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null
fi
if ! "$PY" -c "import mpi4py.MPI" 2>/dev/null; then
    echo "[install_mpi] pip: mpi4py"
    "$PY" -m pip install -q -c "$(dirname "$0")/../../requirements/cpu.txt" mpi4py
fi
"$PY" -c "from mpi4py import MPI; print('[install_mpi]', MPI.Get_library_version().splitlines()[0].strip(), '/ mpi4py', __import__('mpi4py').__version__)"
