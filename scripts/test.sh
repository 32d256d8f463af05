#!/usr/bin/env bash
# test.sh - install dependencies, build with ASan+UBSan (clang, so the
# libFuzzer targets build too) and run the whole suite with ctest: unit tests,
# integration tests against the real kernel and short fuzz runs.
#   scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --deps

BUILD=${TB_TEST_BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTB_SANITIZE=ON -DTB_FUZZ=ON -DTB_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD"
exec ctest --output-on-failure -j"$(nproc)" "$@"
