#!/usr/bin/env bash
# setup.sh - install every Debian package traced-bpf needs, then build it.
# Idempotent and non-interactive; run as root on a fresh Debian 12 machine.
#   scripts/setup.sh            install + Release build in ./build
#   scripts/setup.sh --deps     install only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config clang llvm libclang-rt-14-dev
  libbpf-dev bpftool libelf-dev zlib1g-dev
  protobuf-c-compiler libprotobuf-c-dev
  libcmocka-dev libtracefs-dev libtraceevent-dev
  python3
)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: installing packages needs root (try: sudo $0)" >&2
    exit 1
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Kernel tracing needs tracefs; mount it where the kernel expects it.
if [ "$(id -u)" -eq 0 ] && [ ! -e /sys/kernel/tracing/trace ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null ||
    echo "setup.sh: warning: could not mount tracefs on /sys/kernel/tracing" >&2
fi

[ "${1:-}" = "--deps" ] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTB_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
echo "setup.sh: built into ./build"
