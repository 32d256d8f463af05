"""kernel_table.py - the kernel table: each workload run untraced and under
each system tracer, repeats interleaved so machine noise (other builds on
the same cores) spreads over every configuration alike.

Every run goes through tb_bench_count, which attaches the independent
in-kernel counter for the run, so each tracer's recorded events of the
workload's tasks can be compared with what the kernel actually fired.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

from tracers import TracerError

WORKLOAD_TIMEOUT_S = 300


def workloads(quick, cpu):
    """perf bench workloads: (name, argv). pipe is pinned to one CPU."""
    pipe_loops = "100000" if quick else "200000"
    msg_loops = "100" if quick else "200"
    return [
        (
            "sched pipe",
            ["taskset", "-c", str(cpu), "perf", "bench", "sched", "pipe", "-l", pipe_loops],
        ),
        ("sched messaging", ["perf", "bench", "sched", "messaging", "-g", "10", "-l", msg_loops]),
    ]


def run_one(count_bin, tracer_cls, wl_argv, workdir):
    """One run; returns a dict of what was measured, or raises TracerError."""
    rundir = tempfile.mkdtemp(prefix="run-", dir=workdir)
    tracer = tracer_cls(rundir) if tracer_cls else None
    res = {}
    try:
        if tracer:
            tracer.start()
        cj = os.path.join(rundir, "counts.json")
        tj = os.path.join(rundir, "tids.txt")
        p = subprocess.run(
            [count_bin, "-o", cj, "-p", tj, "--"] + wl_argv,
            capture_output=True,
            text=True,
            timeout=WORKLOAD_TIMEOUT_S,
        )
        if p.returncode != 0:
            raise TracerError(f"workload failed ({p.returncode}): {p.stderr.strip()[-300:]}")
        with open(cj) as f:
            counts = json.load(f)
        m = re.search(r"Total time:\s+([\d.]+)", p.stdout)
        res["time_s"] = float(m.group(1)) if m else counts["elapsed_s"]
        res["kernel_workload_events"] = counts["workload"]["total"]
        if counts["tree_overflow"]:
            raise TracerError("counter's task map overflowed")
        if tracer:
            res["tracer_cpu_s"] = tracer.stop()
            with open(tj) as f:
                tids = {int(x) for x in f if x.strip()}
            res.update(tracer.parse(tids))
    except subprocess.TimeoutExpired:
        raise TracerError(f"workload did not finish within {WORKLOAD_TIMEOUT_S} s")
    finally:
        if tracer:
            tracer.abort()
        shutil.rmtree(rundir, ignore_errors=True)
    return res


def plan(configs, wls, repeats):
    """The interleaved order: each repeat visits every workload and every
    configuration, rotating the configuration order so none always runs
    first (right after the previous tool's file was parsed)."""
    order = []
    for rep in range(repeats):
        for wname, wargv in wls:
            k = rep % len(configs)
            for name, cls in configs[k:] + configs[:k]:
                order.append((rep, wname, wargv, name, cls))
    return order


def run(count_bin, tracer_classes, quick, repeats, deadline, workdir, log):
    """Runs the table; returns (rows, checks, notes).

    tracer_classes: list of Tracer subclasses; the ones whose tool is missing
    are reported and skipped. The deadline (time.monotonic()) is checked
    before each repeat, so a slow machine gets fewer repeats, never a failure.
    """
    notes = []
    configs = [("untraced", None)]
    for cls in tracer_classes:
        why = cls(workdir).available()
        if why:
            notes.append(f"{cls.name}: skipped ({why})")
            log(f"kernel: {cls.name} skipped: {why}")
        else:
            configs.append((cls.name, cls))
    cpu = (os.cpu_count() or 1) - 1
    wls = workloads(quick, cpu)
    results = {}  # (config, workload) -> list of run dicts
    errors = {}
    other_losses = set()
    done_reps = 0
    started = time.monotonic()
    for rep, wname, wargv, name, cls in plan(configs, wls, repeats):
        if rep == done_reps + 1:
            done_reps = rep
            per_rep = (time.monotonic() - started) / rep
            if time.monotonic() + per_rep > deadline:
                notes.append(f"kernel: stopped after {rep} of {repeats} repeats (time budget)")
                log(notes[-1])
                break
        t0 = time.monotonic()
        try:
            r = run_one(count_bin, cls, wargv, workdir)
            results.setdefault((name, wname), []).append(r)
            for line in r.pop("other_losses", []):
                other_losses.add(f"{name} / {wname}: also reported: {line}")
            log(
                f"kernel: rep {rep + 1} {wname:16} {name:10} {r['time_s']:.3f} s"
                + (f", {r['events']} events" if cls else "")
                + f" ({time.monotonic() - t0:.1f} s)"
            )
        except (TracerError, OSError) as e:
            errors.setdefault((name, wname), []).append(str(e))
            log(f"kernel: rep {rep + 1} {wname} {name}: FAILED: {e}")
    notes += sorted(other_losses)
    return aggregate(configs, wls, results, errors, notes)


def aggregate(configs, wls, results, errors, notes):
    rows, checks = [], []
    for wname, _ in wls:
        base = [r["time_s"] for r in results.get(("untraced", wname), [])]
        for name, cls in configs:
            runs = results.get((name, wname), [])
            for e in sorted(set(errors.get((name, wname), []))):
                notes.append(f"{name} / {wname}: {len(errors[(name, wname)])} failed run(s): {e}")
            if not runs:
                continue
            times = [r["time_s"] for r in runs]
            row = {
                "tool": name,
                "workload": wname,
                "slowdown_min": round(min(times) / min(base), 3) if base else None,
                "slowdown_median": (
                    round(statistics.median(times) / statistics.median(base), 3) if base else None
                ),
                "events": None,
                "lost": None,
                "bytes_per_event": None,
                "tracer_cpu_s": None,
            }
            chk = {
                "tool": name,
                "workload": wname,
                "runs": len(runs),
                "failed_runs": len(errors.get((name, wname), [])),
                "time_min_s": min(times),
                "time_median_s": statistics.median(times),
                "kernel_workload_events": int(
                    statistics.median(r["kernel_workload_events"] for r in runs)
                ),
            }
            if cls:
                row["events"] = int(statistics.median(r["events"] for r in runs))
                row["lost"] = max(r["lost"] for r in runs)
                row["bytes_per_event"] = round(
                    statistics.median(r["bytes"] / r["events"] for r in runs if r["events"]), 1
                ) if any(r["events"] for r in runs) else None
                row["tracer_cpu_s"] = round(statistics.median(r["tracer_cpu_s"] for r in runs), 3)
                diffs = [r["workload_events"] - r["kernel_workload_events"] for r in runs]
                chk["tool_workload_events"] = int(
                    statistics.median(r["workload_events"] for r in runs)
                )
                # The worst run: the one furthest from the kernel's count.
                chk["difference"] = max(diffs, key=abs)
                chk["runs_short"] = sum(1 for d in diffs if d < 0)
                chk["difference_pct"] = round(
                    100.0
                    * max(
                        (
                            abs(d) / r["kernel_workload_events"]
                            for d, r in zip(diffs, runs)
                            if r["kernel_workload_events"]
                        ),
                        default=0,
                    ),
                    3,
                )
            rows.append(row)
            checks.append(chk)
    return rows, checks, notes
