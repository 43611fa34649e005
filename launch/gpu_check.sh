#!/usr/bin/env bash
# The GPU path proved in one run on one NVIDIA GPU (a few minutes, at most 8): the CUDA noise kernel bit for bit
# against the CPU stream, a 3-iteration train run in bfloat16 on a 0.5B random Qwen2 (built here) with each backend,
# bench --json for each (ES against generation alone, device memory of ES vs inference), the batched-population
# speed-up on the tiny model; then one summary table (and OUT/summary.json).
#   bash launch/gpu_check.sh [OUT]      (default runs/gpu-check-DATE; PYTHON=... picks the interpreter)
# It runs the project from this source tree with the machine's own torch and transformers: it installs nothing and
# needs no network; CMake and nvcc build the native kernels into es_hpc/_native/ (CPU and CUDA). Where vLLM is not
# installed its rows say "not installed". Without a visible GPU it stops with one line and exit status 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
OUT=${1:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "
import sys
try:
    import torch
except ImportError:
    sys.exit(f'gpu_check: {sys.executable} has no torch; set PYTHON to an interpreter that has it')
if not torch.cuda.is_available():
    sys.exit('gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); run it on a machine with one')
" || exit 2
mkdir -p "$OUT"
echo "gpu_check: building the native noise kernels (log: $OUT/cmake.log)" >&2
{ cmake -S . -B build/gpu -DPython3_EXECUTABLE="$PY" && cmake --build build/gpu -j "$(nproc)"; } > "$OUT/cmake.log" 2>&1 \
    || echo "gpu_check: the native build failed (see $OUT/cmake.log); the kernel row will say so" >&2
exec "$PY" -m es_hpc.tools.gpu_check --out "$OUT"
