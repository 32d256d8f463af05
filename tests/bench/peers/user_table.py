"""user_table.py - the userspace table: CPU nanoseconds a thread pays per event
for libtracebpf (its own tests/bench/lib_bench, when built; an instant event,
measured in thread CPU time like the others), a write() to an
ftrace trace_marker, an LTTng-UST tracepoint, and clock_gettime(BOOTTIME),
the floor any timestamped event pays. Optionally Perfetto's C++ SDK
(tests/bench/peers/sdk_bench.cc, built by scripts/bench.sh when
TB_BENCH_PERFETTO_SDK points at the SDK amalgamation): its TRACE_EVENT scope
next to libtracebpf's slice begin+end of the same run, with the ratio.

trace_marker writes go to a private ftrace instance created here and removed
afterwards, so nobody else's trace sees them. LTTng needs lttng-sessiond:
one already running is used; otherwise one is started and stopped here.
"""

import os
import re
import shutil
import signal
import statistics
import subprocess
import time

TRACEFS = "/sys/kernel/tracing"
RUN_TIMEOUT_S = 120


def parse_kv(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def measure(argv, repeats, env=None):
    """Median ns_per_event over repeats of a tb_bench_user-style command."""
    vals, errors = [], 0
    for _ in range(repeats):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
        kv = parse_kv(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
        if "ns_per_event" not in kv:
            raise RuntimeError(f"{argv[0]} printed no result: {p.stderr.strip()[-200:]}")
        vals.append(float(kv["ns_per_event"]))
        errors += int(kv.get("errors", 0))
    return statistics.median(vals), errors


def row(tool, threads, enabled, ns, note=""):
    return {
        "tool": tool,
        "threads": threads,
        "enabled": enabled,
        "ns_per_event": round(ns, 2),
        "_note": note,
    }


def clock_rows(user_bin, count, repeats, threads_list):
    return [
        row("clock_gettime", t, True, measure([user_bin, "clock", str(t), str(count)], repeats)[0])
        for t in threads_list
    ]


def marker_rows(user_bin, count, repeats, threads_list, log):
    inst = os.path.join(TRACEFS, "instances", f"tb_bench_{os.getpid()}")
    marker = os.path.join(inst, "trace_marker")
    rows = []
    try:
        os.mkdir(inst)
    except OSError as e:
        log(f"userspace: trace_marker skipped: {inst}: {e}")
        return rows, [f"trace_marker: skipped ({e.strerror})"]
    try:
        for enabled in (True, False):
            with open(os.path.join(inst, "tracing_on"), "w") as f:
                f.write("1" if enabled else "0")
            for t in threads_list:
                ns, errs = measure([user_bin, "marker", str(t), str(count), marker], repeats)
                # With tracing off the kernel refuses the write: that refusal
                # is the disabled cost, so its errors are expected.
                note = "" if enabled or errs else "writes accepted while off?"
                if enabled and errs:
                    note = f"{errs} writes failed"
                rows.append(row("trace_marker", t, enabled, ns, note))
    finally:
        os.rmdir(inst)
    return rows, []


class Sessiond:
    """lttng-sessiond for the run: reuse a running one, else own one."""

    def __init__(self, log):
        self.pid = None
        self.log = log

    def _pids(self):
        p = subprocess.run(["pgrep", "-x", "lttng-sessiond"], capture_output=True, text=True)
        return {int(x) for x in p.stdout.split()}

    def __enter__(self):
        before = self._pids()
        if before:
            return self
        subprocess.run(
            ["lttng-sessiond", "--daemonize", "--no-kernel"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        new = self._pids() - before
        # The daemon forks helpers; the one to stop is the oldest (lowest
        # start time), whose parent is init after --daemonize.
        for pid in sorted(new):
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == "1":
                    self.pid = pid
                    break
        return self

    def __exit__(self, *exc):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    with open(f"/proc/{self.pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break  # exited; reaping is init's business
                except FileNotFoundError:
                    break
                time.sleep(0.05)


def lttng(args, check=True):
    return subprocess.run(
        ["lttng"] + args, capture_output=True, text=True, timeout=120, check=check
    )


def lttng_rows(lttng_bin, count, repeats, threads_list, workdir, log):
    if not lttng_bin or not os.path.exists(lttng_bin):
        return [], ["lttng-ust: skipped (the LTTng build of tb_bench_user is missing)"]
    if not shutil.which("lttng-sessiond") or not shutil.which("lttng"):
        return [], ["lttng-ust: skipped (lttng-tools not installed)"]
    rows, notes = [], []
    session = f"tb_bench_{os.getpid()}"
    with Sessiond(log):
        # Disabled: the provider is registered but no session enables it.
        for t in threads_list:
            ns, _ = measure([lttng_bin, "lttng", str(t), str(count)], repeats)
            rows.append(row("lttng-ust", t, False, ns))
        out = os.path.join(workdir, "lttng")
        lttng(["create", session, f"--output={out}"])
        try:
            lttng(["enable-event", "--userspace", "tb_bench:event", f"--session={session}"])
            lttng(["start", session])
            for t in threads_list:
                ns, _ = measure([lttng_bin, "lttng", str(t), str(count)], repeats)
                rows.append(row("lttng-ust", t, True, ns))
            stop = lttng(["stop", session], check=False)
        finally:
            destroy = lttng(["destroy", session], check=False)
            shutil.rmtree(out, ignore_errors=True)
        # Quoted as LTTng prints it: the count it gives can carry odd high
        # bits, so it is not parsed into a number here.
        for line in (stop.stdout + stop.stderr).splitlines():
            if "discarded" in line:
                notes.append(f"lttng-ust (enabled runs): lttng stop said: {line.strip()}")
    return rows, notes


LIB_TABLE_ROW = re.compile(r"^(slice begin\+end|instant|counter)\s+(enabled|disabled)\s+([\d.\s]+)$")


def lib_samples(text, samples):
    """Reads lib_bench's table: a header naming the thread counts, then
    'operation category ns ns ns' rows. Only 'instant' (one event) becomes
    libtracebpf's ns per event; slices are two events and say so in a note.
    """
    threads = []
    for line in text.splitlines():
        if line.startswith("operation"):
            threads = [int(t) for t in re.findall(r"(\d+) threads?", line)]
            continue
        m = LIB_TABLE_ROW.match(line.strip())
        if not m or not threads:
            continue
        vals = [float(v) for v in m.group(3).split()]
        for t, v in zip(threads, vals):
            samples.setdefault((m.group(1), t, m.group(2) == "enabled"), []).append(v)


def lib_rows(lib_bench, quick, repeats, log, slices=None):
    """libtracebpf's own benchmark (tests/bench/lib_bench, thread CPU ns).
    @slices, when given, receives {threads: median slice begin+end ns}."""
    if not lib_bench or not os.path.exists(lib_bench):
        return [], ["libtracebpf: skipped (tests/bench/lib_bench is not built)"]
    samples = {}
    for _ in range(repeats):
        p = subprocess.run(
            [lib_bench, "100000" if quick else "1000000"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        lib_samples(p.stdout, samples)
    rows = [
        row("libtracebpf", t, en, statistics.median(v), "an instant event")
        for (op, t, en), v in sorted(samples.items())
        if op == "instant"
    ]
    if not rows:
        return [], ["libtracebpf: lib_bench's table was not understood"]
    if slices is not None:
        for (op, t, en), v in samples.items():
            if op == "slice begin+end" and en:
                slices[t] = statistics.median(v)
    notes = [
        f"libtracebpf: slice begin+end (two events), enabled, {t} thread(s): "
        f"{statistics.median(v):.1f} ns"
        for (op, t, en), v in sorted(samples.items())
        if op == "slice begin+end" and en
    ]
    return rows, notes


SDK_HOWTO = (
    "perfetto-sdk: not measured; set TB_BENCH_PERFETTO_SDK=DIR (perfetto.h and "
    "perfetto.cc of the SDK amalgamation, v53.0, built outside this repo: see "
    "docs/performance.md) to add its TRACE_EVENT scope next to libtracebpf's slice"
)


def sdk_rows(sdk_bin, sdk_note, quick, repeats, slices):
    """Perfetto's SDK: one TRACE_EVENT scope (begin + end) on one thread,
    in-process backend, thread CPU ns. The row is per event (scope / 2) like
    the others; the note and a notes line give the scope, libtracebpf's
    slice begin+end from this run and their ratio."""
    if not sdk_bin:
        skipped = {"tool": "perfetto-sdk", "threads": 1, "enabled": True, "ns_per_event": None}
        skipped["_note"] = "not run: set TB_BENCH_PERFETTO_SDK=DIR (docs/performance.md)"
        return [skipped], [f"perfetto-sdk: skipped ({sdk_note})" if sdk_note else SDK_HOWTO]
    scopes, disabled = [], []
    for _ in range(repeats):
        p = subprocess.run(
            [sdk_bin, "200000" if quick else "1000000", "3" if quick else "5"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        kv = parse_kv(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
        if "scope_ns" not in kv:
            raise RuntimeError(f"sdk_bench printed no result: {p.stderr.strip()[-200:]}")
        scopes.append(float(kv["scope_ns"]))
        disabled.append(float(kv["disabled_ns"]))
    scope = statistics.median(scopes)
    lib = slices.get(1)
    if lib:
        cmp = f"libtracebpf slice begin+end {lib:.1f} ns = {lib / scope:.2f} x SDK"
    else:
        cmp = "libtracebpf slice begin+end not measured in this run"
    note = f"TRACE_EVENT scope {scope:.1f} ns (in-process backend); {cmp}"
    rows = [
        row("perfetto-sdk", 1, True, scope / 2, note),
        row("perfetto-sdk", 1, False, statistics.median(disabled) / 2, "TRACE_EVENT scope / 2"),
    ]
    return rows, [f"perfetto-sdk vs libtracebpf, same run, 1 thread: {note}"]


def run(user_bin, lttng_bin, lib_bench, quick, workdir, log, sdk_bin=None, sdk_note=None):
    """Returns (rows, notes); a missing piece is a note, never a failure."""
    count = 200000 if quick else 2000000
    repeats = 3 if quick else 7
    threads_list = [1, 2]
    rows, notes = [], []
    slices = {}
    parts = [
        ("libtracebpf", lambda: lib_rows(lib_bench, quick, repeats, log, slices)),
        ("perfetto-sdk", lambda: sdk_rows(sdk_bin, sdk_note, quick, repeats, slices)),
        ("trace_marker", lambda: marker_rows(user_bin, count, repeats, threads_list, log)),
        ("lttng-ust", lambda: lttng_rows(lttng_bin, count, repeats, threads_list, workdir, log)),
        ("clock_gettime", lambda: (clock_rows(user_bin, count * 5, repeats, threads_list), [])),
    ]
    for name, fn in parts:
        t0 = time.monotonic()
        try:
            r, n = fn()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            r, n = [], [f"{name}: failed: {e}"]
        rows += r
        notes += n
        log(f"userspace: {name}: {len(r)} row(s) ({time.monotonic() - t0:.1f} s)")
    return rows, notes
