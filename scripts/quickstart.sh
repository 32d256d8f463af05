#!/usr/bin/env bash
# quickstart.sh - one command from a fresh Debian machine to a system trace:
# installs dependencies, builds, and records with the embedded default
# (no daemon needed). Extra arguments go to `tracebpf record`.
#   sudo scripts/quickstart.sh                 # 10 s of scheduler activity
#   sudo scripts/quickstart.sh -t 30s sched irq
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
out=${TB_QUICKSTART_OUT:-trace.pftrace}
if [ $# -eq 0 ]; then
  set -- -t 10s sched proc
fi
exec build/consumer/tracebpf record -o "$out" "$@"
