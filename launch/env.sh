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
export ES_HPC_TINY_MODEL=${ES_HPC_TINY_MODEL:-$PWD/.cache/tiny-model}
tiny_model() {
    # Build the embedded tiny model once (about a minute); later runs reuse it.
    python -m es_hpc make-tiny-model --out "$ES_HPC_TINY_MODEL" > /dev/null
}
