# Sourced by the launch scripts: a project virtualenv with es_hpc installed (CPU torch pinned), reused when present.
# VENV overrides its place; the install is redone only when pyproject.toml changes.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    echo "[es_hpc] creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
. "$VENV/bin/activate"
stamp="$VENV/.es_hpc-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[es_hpc] installing es_hpc and its dependencies into $VENV (torch==2.13.0 CPU wheel here)"
    python -m pip install -q --upgrade pip
    python -m pip install -q -e ".[test]"
    touch "$stamp"
fi
# The native noise kernels (native/, built by CMake into es_hpc/_native/); rebuilt when their sources change.
# Without a compiler or cmake, ES uses the torch fallback: the same noise, several times slower.
lib=es_hpc/_native/libes_philox_noise.so
if command -v cmake >/dev/null && { [ ! -e "$lib" ] || [ -n "$(find native CMakeLists.txt -newer "$lib" 2>/dev/null)" ]; }; then
    echo "[es_hpc] building the native noise kernels (cmake -S . -B build && cmake --build build)"
    { cmake -S . -B build -DPython3_EXECUTABLE="$(command -v python)" > /dev/null && cmake --build build -j 2 > /dev/null; } \
        || echo "[es_hpc] native build failed: ES uses the torch noise fallback"
fi
export ES_HPC_TINY_MODEL=${ES_HPC_TINY_MODEL:-$PWD/.cache/tiny-model}
tiny_model() {
    # Build the embedded tiny model once (about a minute); later runs reuse it.
    python -m es_hpc make-tiny-model --out "$ES_HPC_TINY_MODEL" > /dev/null
}
