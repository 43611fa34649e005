# Sourced by the launch scripts: a project virtualenv with es_hpc installed, reused when present. VENV overrides its
# place. It holds the locked set requirements/cpu.txt (CPU torch; launch/lock.sh regenerates it) and es_hpc itself,
# editable; the install is redone when the lock or pyproject.toml changes.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    echo "[es_hpc] creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
. "$VENV/bin/activate"
lock=requirements/cpu.txt
stamp="$VENV/.es_hpc-installed"
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[es_hpc] installing $lock and es_hpc (editable) into $VENV"
    python -m pip install -q --upgrade pip
    python -m pip install -q -r "$lock"
    python -m pip install -q --no-deps -e .
    touch "$stamp"
fi
# The native noise kernels (native/, built by CMake into es_hpc/_native/); rebuilt when their sources change.
# Without a compiler or cmake, ES uses the torch fallback: the same noise, several times slower.
lib=es_hpc/_native/libes_philox_noise.so
if command -v cmake >/dev/null && { [ ! -e "$lib" ] || [ -n "$(find native CMakeLists.txt -newer "$lib" 2>/dev/null)" ]; }; then
    echo "[es_hpc] building the native noise kernels (cmake -S . -B build && cmake --build build)"
    # the library is touched so that a rebuild which leaves it unchanged is not redone at every sourcing
    { cmake -S . -B build -DPython3_EXECUTABLE="$(command -v python)" > /dev/null \
        && cmake --build build -j 2 > /dev/null && touch "$lib"; } \
        || echo "[es_hpc] native build failed: ES uses the torch noise fallback"
fi
