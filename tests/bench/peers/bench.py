#!/usr/bin/env python3
"""bench.py - traced-bpf against the tracers a user would pick instead.

Runs the kernel table (kernel_table.py), the userspace table
(user_table.py) and the service table (the tree's trace_buffer_bench), prints
them, and writes bench-results-<date>.json. scripts/bench.sh installs the
tools and builds the helpers first; run that, not this, unless the build is
already there:

  tests/bench/peers/bench.py --build-dir build-bench [--quick]

A missing tool, a failed run or an exhausted time budget becomes a note in
the results; the exit status is 0 whenever the results were written.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kernel_table  # noqa: E402
import report  # noqa: E402
import tracers  # noqa: E402
import user_table  # noqa: E402

T0 = time.monotonic()
USER_SERVICE_RESERVE_S = 60


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        lines = [x.strip() for x in (p.stdout + p.stderr).splitlines() if x.strip()]
        return next((x for x in lines if "version" in x.lower()), lines[0])
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def service(tbuf_bench, quick):
    """MB/s of chunks copied into the central buffer and read back, and the
    plain memcpy of the same bytes, from trace_buffer_bench."""
    if not tbuf_bench or not os.path.exists(tbuf_bench):
        return {}, ["service: skipped (trace_buffer_bench is not built)"]
    best = {}
    for _ in range(3 if quick else 7):
        p = subprocess.run(
            [tbuf_bench, "1024" if quick else "4096"], capture_output=True, text=True, timeout=300
        )
        vals = {
            "memcpy_mb_per_s": re.search(r"plain memcpy of the chunks:\s+([\d.]+)", p.stdout),
            "mb_per_s": re.search(r"read back, 1 producer\(s\):\s+([\d.]+)", p.stdout),
            "_mb_per_s_4": re.search(r"read back, 4 producer\(s\):\s+([\d.]+)", p.stdout),
        }
        if not vals["mb_per_s"] or not vals["memcpy_mb_per_s"]:
            return {}, [f"service: trace_buffer_bench output not understood: {p.stderr[-200:]}"]
        # Best of the repeats: throughput only ever loses to noise.
        for k, m in vals.items():
            if m:
                best[k] = max(best.get(k, 0.0), float(m.group(1)))
    return best, []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller workloads")
    ap.add_argument("--build-dir", default="build-bench")
    ap.add_argument("--lttng-bin", help="tb_bench_user built with the LTTng-UST provider")
    ap.add_argument(
        "--sdk-bin", help="sdk_bench built against the Perfetto SDK (TB_BENCH_PERFETTO_SDK)"
    )
    ap.add_argument("--sdk-note", help="why the Perfetto SDK row is missing (from bench.sh)")
    ap.add_argument("--out-dir", default=".", help="where bench-results-<date>.json goes")
    ap.add_argument("--repeats", type=int, help="kernel repeats (default 5 quick, 11 full)")
    ap.add_argument(
        "--budget-s",
        type=float,
        help="wall time for the whole run, counted from $TB_BENCH_T0 (epoch s, set by "
        "bench.sh before it builds) or from now (default 570 with --quick, else none)",
    )
    ap.add_argument(
        "--only", default="kernel,userspace,service", help="comma list of tables to run"
    )
    args = ap.parse_args()

    tests = os.path.join(args.build_dir, "tests")
    # traced-bpf's programs come from the same build, found the way a user
    # would find installed ones.
    os.environ["PATH"] = os.pathsep.join(
        [os.path.abspath(os.path.join(args.build_dir, d))
         for d in ("consumer", "service", "producers/ftrace")] + [os.environ.get("PATH", "")]
    )
    count_bin = os.path.join(tests, "tb_bench_count")
    user_bin = os.path.join(tests, "tb_bench_user")
    only = set(args.only.split(","))
    repeats = args.repeats or (5 if args.quick else 11)
    budget = args.budget_s or (570 if args.quick else 86400)
    t0_epoch = float(os.environ.get("TB_BENCH_T0", time.time()))
    # The kernel table stops starting repeats in time to leave room for the
    # userspace and service tables (about a minute on a loaded 2-core box).
    left_s = t0_epoch + budget - time.time() - USER_SERVICE_RESERVE_S
    kernel_deadline = time.monotonic() + left_s
    notes = []
    kernel_rows, checks, user_rows, svc = [], [], [], {}
    workdir = tempfile.mkdtemp(prefix="tb-bench-")
    try:
        if "kernel" in only:
            if not os.path.exists(count_bin):
                notes.append("kernel: skipped (tb_bench_count is not built)")
            else:
                classes = list(tracers.PEERS)
                try:
                    import tracer_tb  # noqa: E402

                    classes.insert(0, tracer_tb.TracedBpf)
                except ImportError:
                    notes.append("traced-bpf: skipped (no driver)")
                kernel_rows, checks, n = kernel_table.run(
                    count_bin,
                    classes,
                    args.quick,
                    repeats,
                    kernel_deadline,
                    workdir,
                    log,
                )
                notes += n
        if "userspace" in only:
            lib_bench = os.path.join(tests, "lib_bench")
            user_rows, n = user_table.run(
                user_bin,
                args.lttng_bin,
                lib_bench,
                args.quick,
                workdir,
                log,
                sdk_bin=args.sdk_bin,
                sdk_note=args.sdk_note,
            )
            notes += n
        if "service" in only:
            svc, n = service(os.path.join(tests, "trace_buffer_bench"), args.quick)
            notes += n
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    untraced = [c["runs"] for c in checks if c["tool"] == "untraced"]
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeats_requested": repeats,
        "repeats_done": min(untraced) if untraced else 0,
        "kernel_release": platform.release(),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg()[0],
        "duration_s": round(time.monotonic() - T0, 1),
        "versions": {
            "perf": version(["perf", "version"]),
            "trace-cmd": version(["trace-cmd", "-h"]),
            "bpftrace": version(["bpftrace", "--version"]),
            "lttng": version(["lttng", "--version"]),
        },
    }
    report.print_all(kernel_rows, checks, user_rows, svc, notes, meta)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    path = os.path.abspath(os.path.join(args.out_dir, f"bench-results-{stamp}.json"))
    report.write_json(path, kernel_rows, checks, user_rows, svc, notes, meta)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
