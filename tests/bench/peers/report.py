"""report.py - prints the benchmark's tables and writes the JSON results.

The JSON keeps the shape runs are compared by over time:
  {"kernel": [{tool, workload, slowdown_min, slowdown_median, events, lost,
               bytes_per_event, tracer_cpu_s}],
   "userspace": [{tool, threads, enabled, ns_per_event}],
   "service": {mb_per_s, memcpy_mb_per_s}}
plus "kernel_check" (each tool against the in-kernel counter), "notes" and
"meta" beside them, so readers of the three tables never see extra keys.
"""

import json

KERNEL_KEYS = [
    "tool",
    "workload",
    "slowdown_min",
    "slowdown_median",
    "events",
    "lost",
    "bytes_per_event",
    "tracer_cpu_s",
]
USER_KEYS = ["tool", "threads", "enabled", "ns_per_event"]


def fmt(v, spec=""):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return format(v, spec)


def table(headers, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in
              enumerate(headers)]
    out = ["  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in
                     enumerate(zip(headers, widths)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in
                             enumerate(zip(r, widths))).rstrip())
    return "\n".join(out)


def kernel_text(rows, checks):
    by_key = {(c["tool"], c["workload"]): c for c in checks}
    lines = []
    for r in rows:
        c = by_key.get((r["tool"], r["workload"]), {})
        diff = c.get("difference")
        lines.append([
            r["workload"],
            r["tool"],
            fmt(r["slowdown_min"], ".2f") + "x" if r["slowdown_min"] else "-",
            fmt(r["slowdown_median"], ".2f") + "x" if r["slowdown_median"] else "-",
            fmt(c.get("time_median_s"), ".3f"),
            fmt(r["events"]),
            fmt(r["lost"]),
            fmt(r["bytes_per_event"], ".1f"),
            fmt(r["tracer_cpu_s"], ".2f"),
            fmt(c.get("kernel_workload_events")),
            fmt(c.get("tool_workload_events")),
            "-" if diff is None else f"{diff:+d} ({c['difference_pct']:.2f}%)"
            + (f" {c['runs_short']}/{c['runs']} short" if c.get("runs_short") else ""),
            f"{c.get('runs', 0)}" + (f"+{c['failed_runs']}F" if c.get("failed_runs") else ""),
        ])
    return table(
        [
            "workload",
            "tool",
            "slow min",
            "slow med",
            "med s",
            "events",
            "lost",
            "B/event",
            "cpu s",
            "kernel wl",
            "tool wl",
            "tool-kernel",
            "runs",
        ],
        lines,
    )


def user_text(rows):
    return table(
        ["tool", "enabled", "threads", "ns/event", "note"],
        [
            [r["tool"], fmt(r["enabled"]), fmt(r["threads"]), fmt(r["ns_per_event"], ".1f"),
             r.get("_note", "")]
            for r in rows
        ],
    )


def service_text(svc):
    if not svc:
        return "  (not measured)"
    lines = [
        ["central trace buffer, copy in + read back (1 producer)",
         fmt(svc.get("mb_per_s"), ".0f")],
        ["same, 4 producers", fmt(svc.get("_mb_per_s_4"), ".0f")],
        ["plain memcpy of the chunks", fmt(svc.get("memcpy_mb_per_s"), ".0f")],
    ]
    return table(["path", "", "MB/s"], [[a, "", b] for a, b in lines])


def print_all(kernel_rows, checks, user_rows, svc, notes, meta):
    print()
    print(f"== kernel: slowdown vs untraced over {meta['repeats_done']} interleaved repeat(s) ==")
    print("   events/B per event/cpu s: median per run; lost: worst run; tool-kernel: the run")
    print("   furthest from the in-kernel count of the workload's own events (wl), and how many")
    print("   runs recorded fewer of them than the kernel fired")
    print(kernel_text(kernel_rows, checks))
    print()
    print("== userspace: thread CPU ns per event (median of repeats) ==")
    print(user_text(user_rows))
    print()
    print("== service ==")
    print(service_text(svc))
    if notes:
        print()
        print("notes:")
        for n in notes:
            print("  - " + n)


def write_json(path, kernel_rows, checks, user_rows, svc, notes, meta):
    doc = {
        # The untraced baseline is every ratio's denominator, not a tool: its
        # times are in kernel_check.
        "kernel": [{k: r[k] for k in KERNEL_KEYS} for r in kernel_rows if r["tool"] != "untraced"],
        "userspace": [{k: r[k] for k in USER_KEYS} for r in user_rows],
        "service": {k: svc.get(k) for k in ("mb_per_s", "memcpy_mb_per_s")},
        "kernel_check": checks,
        "notes": notes,
        "meta": meta,
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
