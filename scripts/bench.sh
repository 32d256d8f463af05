#!/usr/bin/env bash
# bench.sh - traced-bpf against the tracers a user would pick instead
# (trace-cmd, perf, bpftrace, LTTng-UST, a trace_marker write), side by side
# in one run. Installs the bench-only Debian packages, builds the helpers
# into ./build-bench (Release), then runs tests/bench/peers/bench.py, which
# prints the tables and writes bench-results-<date>.json (path printed).
#
#   sudo scripts/bench.sh            thorough: 11 interleaved repeats
#   sudo scripts/bench.sh --quick    5 repeats, smaller workloads, < 10 min
#   sudo scripts/bench.sh --quick --only kernel      one table
#
# Optional: TB_BENCH_PERFETTO_SDK=DIR (perfetto.h + perfetto.cc of the
# Perfetto SDK amalgamation, fetched and generated outside this repo; see
# docs/performance.md) adds the SDK's TRACE_EVENT scope to the userspace
# table, next to libtracebpf's slice begin+end from the same run.
#
# Extra flags go to bench.py (--repeats N, --budget-s S, --out-dir DIR,
# --only kernel,userspace,service). Not part of the test suite: a missing
# tool, a failed run or a slow machine shows up as a note, not a failure.
# The packages are bench-only on purpose (not in scripts/setup.sh).
set -euo pipefail
export TB_BENCH_T0=${TB_BENCH_T0:-$(date +%s)}
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${TB_BENCH_BUILD:-$ROOT/build-bench}

PACKAGES=(linux-perf trace-cmd bpftrace lttng-tools liblttng-ust-dev python3 coreutils)

if [ "$(id -u)" -ne 0 ]; then
  echo "bench.sh: tracers need root (BPF, tracefs, perf -a): sudo $0 $*" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The project's own build dependencies.
scripts/setup.sh --deps

if [ ! -e /sys/kernel/tracing/trace ]; then
  mount -t tracefs nodev /sys/kernel/tracing
fi

# Release build, one target at a time: a piece that does not build (work in
# progress elsewhere in the tree) only drops its own rows from the run.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
for t in tb_bench_count tb_bench_user trace_buffer_bench traced-bpf traced-bpf-probes tracebpf_cli \
  lib_bench; do
  if ! cmake --build "$BUILD" --target "$t" -j"$(nproc)" >"$BUILD/bench-build-$t.log" 2>&1; then
    rm -f "$BUILD/tests/$t"
    echo "bench.sh: $t did not build (see $BUILD/bench-build-$t.log); its rows are skipped" >&2
  fi
done

# The LTTng-UST variant of tb_bench_user: the provider instance is generated
# here, in a temporary directory, from tests/bench/peers/tb_lttng_tp.h.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#define LTTNG_UST_TRACEPOINT_CREATE_PROBES\n#define LTTNG_UST_TRACEPOINT_DEFINE\n#include "tb_lttng_tp.h"\n' \
  >"$tmp/tb_lttng_provider.c"
lttng_args=()
if gcc -O2 -D_GNU_SOURCE -DTB_BENCH_LTTNG -I"$ROOT/tests/bench/peers" \
  -o "$BUILD/tests/tb_bench_user_lttng" tests/bench/peers/userspace_bench.c \
  "$tmp/tb_lttng_provider.c" -llttng-ust -ldl -lpthread 2>"$tmp/lttng-build.log"; then
  lttng_args=(--lttng-bin "$BUILD/tests/tb_bench_user_lttng")
else
  echo "bench.sh: LTTng-UST provider did not build; lttng-ust rows skipped:" >&2
  cat "$tmp/lttng-build.log" >&2
fi

# The Perfetto SDK row: compiled only against an SDK the user points at.
# perfetto.o (about 90 s to compile) is kept in the build dir and rebuilt
# when perfetto.cc or perfetto.h is newer.
sdk_args=()
if [ -n "${TB_BENCH_PERFETTO_SDK:-}" ]; then
  sdk=$TB_BENCH_PERFETTO_SDK
  obj=$BUILD/perfetto-sdk/perfetto.o
  mkdir -p "$BUILD/perfetto-sdk"
  if [ ! -f "$sdk/perfetto.h" ] || [ ! -f "$sdk/perfetto.cc" ]; then
    echo "bench.sh: TB_BENCH_PERFETTO_SDK=$sdk has no perfetto.h and perfetto.cc; SDK row skipped" >&2
    sdk_args=(--sdk-note "TB_BENCH_PERFETTO_SDK=$sdk has no perfetto.h/perfetto.cc")
  else
    if [ ! -f "$obj" ] || [ "$sdk/perfetto.cc" -nt "$obj" ] || [ "$sdk/perfetto.h" -nt "$obj" ]; then
      echo "bench.sh: compiling the Perfetto SDK ($sdk/perfetto.cc, about 90 s)" >&2
      g++ -O2 -std=c++17 -c -I"$sdk" -o "$obj.tmp" "$sdk/perfetto.cc" \
        >"$BUILD/perfetto-sdk/build.log" 2>&1 && mv "$obj.tmp" "$obj" || rm -f "$obj.tmp"
    fi
    if [ -f "$obj" ] && g++ -O2 -std=c++17 -I"$sdk" -o "$BUILD/tests/sdk_bench" \
      tests/bench/peers/sdk_bench.cc "$obj" -lpthread >>"$BUILD/perfetto-sdk/build.log" 2>&1; then
      sdk_args=(--sdk-bin "$BUILD/tests/sdk_bench")
    else
      echo "bench.sh: sdk_bench did not build (see $BUILD/perfetto-sdk/build.log); SDK row skipped" >&2
      sdk_args=(--sdk-note "sdk_bench did not build against $sdk (see $BUILD/perfetto-sdk/build.log)")
    fi
  fi
fi

python3 tests/bench/peers/bench.py --build-dir "$BUILD" "${lttng_args[@]}" "${sdk_args[@]}" "$@"
