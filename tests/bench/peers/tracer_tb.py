"""tracer_tb.py - the traced-bpf driver for the kernel table.

Runs `tracebpf record -c CONFIG --txt -o FILE` (the scheduler events in the
compact sched form) the way a user would: with no
daemon running it records through its embedded service and kernel producer
(traced-bpf-probes, found in PATH; scripts/bench.sh puts the build's
directories there). The command prints nothing when recording starts, so
readiness is read from the kernel: the tracer's process tree holds a BPF
link of the sched_switch program (tb_sched_switch).

Events and the workload's share come from `tracebpf export --format ftrace`;
losses from `tracebpf info` (kernel ring overruns and drops as events; chunk
and packet losses of the service, which have no event count, as a note).
"""

import json
import os
import re
import shutil
import subprocess
import time

from tracers import READY_TIMEOUT_S, TRACEPOINTS, Tracer, TracerError, count_ftrace_text

SETTLE_S = 0.3

COMPACT_CONFIG = """buffers {{
  size_kb: 65536
  fill_policy: RING_BUFFER
}}
data_sources {{
  config {{
    name: "linux.ftrace"
    ftrace_config {{
{events}      compact_sched {{
        enabled: true
      }}
    }}
  }}
}}
"""


def tree_pids(root):
    """The pids of root and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def linked_prog_ids(pids):
    """Ids of BPF programs behind the BPF link fds these processes hold."""
    ids = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    info = f.read()
            except OSError:
                continue
            if "link_type:" in info:
                m = re.search(r"^prog_id:\s+(\d+)", info, re.M)
                if m:
                    ids.add(int(m.group(1)))
    return ids


def prog_names(ids):
    p = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    try:
        return {x.get("name", "") for x in json.loads(p.stdout) if x.get("id") in ids}
    except ValueError:
        return set()


class TracedBpf(Tracer):
    name = "traced-bpf"

    def available(self):
        if not shutil.which("tracebpf"):
            return "tracebpf not built"
        if not shutil.which("traced-bpf-probes"):
            return "traced-bpf-probes not built"
        if not shutil.which("bpftool"):
            return "bpftool not installed (needed to see when recording starts)"
        return None

    def start(self):
        # The same events as the other tracers, in the compact sched form
        # (what `tracebpf record sched` and Perfetto's UI use): a text config,
        # because -e alone gives the typed form.
        cfg = self.out + ".pbtxt"
        with open(cfg, "w") as f:
            f.write(COMPACT_CONFIG.format(
                events="".join(f'      ftrace_events: "sched/{tp}"\n' for tp in TRACEPOINTS)))
        argv = ["tracebpf", "record", "-c", cfg, "--txt", "-t", "1h", "-o", self.out]
        self._spawn(argv, "record.out")
        deadline = time.monotonic() + READY_TIMEOUT_S
        seen = set()
        while True:
            if self.proc.poll() is not None:
                raise TracerError(f"tracebpf record exited {self.proc.returncode}: "
                                  + self._stderr_tail())
            if time.monotonic() > deadline:
                raise TracerError("tracebpf record: no sched_switch program attached after "
                                  f"{READY_TIMEOUT_S} s: " + self._stderr_tail())
            ids = linked_prog_ids(tree_pids(self.proc.pid))
            if ids and ids != seen:
                seen = ids
                if "tb_sched_switch" in prog_names(ids):
                    break
            time.sleep(0.05)
        time.sleep(SETTLE_S)

    def _stderr_tail(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-3:])
        except OSError:
            return ""

    def stop(self):
        cpu = super().stop()
        if self.exit_code != 0:
            raise TracerError(f"tracebpf record exited {self.exit_code}: " + self._stderr_tail())
        return cpu

    def parse(self, tids):
        p = subprocess.Popen(
            ["tracebpf", "export", "--format", "ftrace", self.out],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        events, workload = count_ftrace_text(p.stdout, tids)
        err = p.stderr.read()
        if p.wait() != 0:
            raise TracerError(f"tracebpf export failed: {err.strip()[-200:]}")
        info = subprocess.run(
            ["tracebpf", "info", self.out], capture_output=True, text=True, errors="replace"
        ).stdout
        lost = 0
        for m in re.finditer(
            r"(\d+) events overrun, (\d+) dropped, (\d+) commit overruns", info
        ):
            lost += sum(int(x) for x in m.groups())
        other = [
            line.strip()
            for line in info.split("losses:", 1)[-1].splitlines()
            if re.search(r"chunks|packet|bundle", line) and re.search(r"[1-9]", line)
        ]
        return dict(
            events=events,
            workload_events=workload,
            lost=lost,
            bytes=self.file_bytes(),
            other_losses=other,
        )
