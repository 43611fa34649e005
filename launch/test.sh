#!/usr/bin/env bash
# The test suite: set up, configure and build with CMake (the native noise kernels), then run every ctest suite
# (tiny model built once, shared).
# Arguments go to ctest, e.g. `bash launch/test.sh -L unit`.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cmake -S . -B build -DPython3_EXECUTABLE="$(command -v python)" > /dev/null
cmake --build build -j 2
ctest --test-dir build --output-on-failure "$@"
