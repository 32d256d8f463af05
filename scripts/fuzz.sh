#!/usr/bin/env bash
# fuzz.sh - build every libFuzzer target (clang, ASan+UBSan) and run each for
# a bounded time, one after the other. A crash stops the script with the
# fuzzer's reproducer file named in its output.
#   scripts/fuzz.sh                 # 60 s per target
#   scripts/fuzz.sh 300             # 5 minutes per target
#   scripts/fuzz.sh 60 chunk_fuzz   # one target
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
BUILD=${TB_FUZZ_BUILD:-build-fuzz}

scripts/setup.sh --deps
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTB_SANITIZE=ON -DTB_FUZZ=ON -DTB_BUILD_TESTS=ON >/dev/null

# Every target registered with tb_fuzz_target() in tests/fuzz/*.cmake.
mapfile -t all < <(sed -n 's/.*tb_fuzz_target(NAME \([A-Za-z0-9_]*\).*/\1/p' tests/fuzz/*.cmake | sort)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"
for t in "${targets[@]}"; do
  corpus="$BUILD/fuzz-corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
  echo "fuzz.sh: $t for ${seconds}s"
  log="$BUILD/fuzz-$t.log"
  status=0
  "$BUILD/tests/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/fuzz-artifacts-$t-" "$corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: $t FAILED (exit $status); full log: $log" >&2
    exit 1
  fi
done
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds}s each, no crash"
