#!/usr/bin/env bash
# The test suite: set up, configure and build with CMake (the native noise kernels), then run every ctest suite.
# Arguments go to ctest, e.g. `bash launch/test.sh -L unit`; without arguments the vLLM suite runs too (it skips
# without vLLM). Whatever the result, the last line names every test skipped, why, and the command that enables it
# (tests/conftest.py appends them to $ES_HPC_SKIP_LOG); the exit status is the tests'.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cmake -S . -B build -DPython3_EXECUTABLE="$(command -v python)" > /dev/null
cmake --build build -j 2
export ES_HPC_SKIP_LOG=$PWD/build/skipped.txt
: > "$ES_HPC_SKIP_LOG"
status=0 vllm=0
ctest --test-dir build --output-on-failure "$@" || status=$?
[ $# -gt 0 ] || python -m pytest -q tests/vllm_backend || vllm=$?
# one line: the recorded skips (each once), joined
awk '!seen[$0]++ { printf "%s%s", (n++ ? ", " : "skipped: "), $0 }
     END { print n ? "" : "skipped: none (every selected test ran)" }' "$ES_HPC_SKIP_LOG"
exit $((status ? status : vllm))  # ctest's status first
