"""tracers.py - one driver per system tracer the kernel table compares.

Each driver starts its tool on the five scheduler tracepoints system-wide,
waits until the tool says it is recording, stops it the way a user would
(Ctrl-C to its process group), and reads back what the tool wrote: events in
the file, events of the workload's tasks (by thread id, to compare with the
in-kernel counter), events the tool itself reports lost, and the file size.

The tracer's CPU time comes from wait4() on the tool's process, which covers
every helper process it waited for (trace-cmd's per-CPU recorders).
"""

import os
import re
import shutil
import signal
import subprocess
import time

TRACEPOINTS = [
    "sched_switch",
    "sched_waking",
    "sched_wakeup_new",
    "sched_process_fork",
    "sched_process_exit",
]

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


class TracerError(Exception):
    pass


def wait_for_text(path, text, timeout, proc):
    """Polls a file the tool writes until it holds text (or the tool died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                if text.encode() in f.read(1 << 16):
                    return
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise TracerError(f"exited with {proc.returncode} before it was ready")
        time.sleep(0.02)
    raise TracerError(f"not ready after {timeout} s")


def count_ftrace_text(stream, tids):
    """Counts events in ftrace-style text ("comm-TID [CPU] TS: event: ...",
    or "comm-TID (TGID) [CPU] ..." as tracefs prints with record-tgid).

    Returns (events, workload_events). Header and comment lines are skipped.
    """
    events = workload = 0
    for line in stream:
        br = line.find(" [")
        if br < 0 or line.lstrip().startswith("#"):
            continue
        head = line[:br].rstrip()
        if head.endswith(")"):  # record-tgid layout: "comm-TID (TGID)"
            head = head[: head.rfind("(")].rstrip()
        dash = head.rfind("-")
        if dash < 0 or not head[dash + 1 :].isdigit():
            continue
        events += 1
        if int(head[dash + 1 :]) in tids:
            workload += 1
    return events, workload


class Tracer:
    """Base: process handling shared by every tool."""

    name = "?"

    def __init__(self, rundir):
        self.rundir = rundir
        self.proc = None
        self.out = os.path.join(rundir, "trace." + self.name)

    def available(self):
        """Returns None when the tool can run, else the reason it cannot."""
        return None

    def _spawn(self, argv, stdout_name):
        self.stdout_path = os.path.join(self.rundir, stdout_name)
        self.stderr_path = os.path.join(self.rundir, stdout_name + ".err")
        with open(self.stdout_path, "wb") as so, open(self.stderr_path, "wb") as se:
            self.proc = subprocess.Popen(
                argv, stdout=so, stderr=se, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def start(self):
        raise NotImplementedError

    def _interrupt(self):
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def stop(self):
        """Ctrl-C, then wait; returns the tool's CPU seconds (user + system).

        Some tools (bpftrace) now and then ignore the first SIGINT, so it is
        repeated every 2 s; a tool still running after STOP_TIMEOUT_S is
        killed and the run is reported as failed.
        """
        self._interrupt()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        next_int = time.monotonic() + 2
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                os.wait4(self.proc.pid, 0)
                self.proc.returncode = -9
                raise TracerError(f"did not stop within {STOP_TIMEOUT_S} s")
            if now > next_int:
                self._interrupt()
                next_int = now + 2
            time.sleep(0.05)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.exit_code = self.proc.returncode
        return ru.ru_utime + ru.ru_stime

    def abort(self):
        if self.proc and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except (ProcessLookupError, ChildProcessError):
                pass

    def file_bytes(self):
        return os.path.getsize(self.out) if os.path.exists(self.out) else 0

    def parse(self, tids):
        """Returns dict(events, workload_events, lost, bytes)."""
        raise NotImplementedError


class TraceCmd(Tracer):
    name = "trace-cmd"

    def available(self):
        return None if shutil.which("trace-cmd") else "trace-cmd not installed"

    def start(self):
        # Line-buffered so "Hit Ctrl^C" reaches the file when it is printed.
        argv = ["stdbuf", "-oL", "trace-cmd", "record", "-d", "--no-filter", "-o", self.out]
        for tp in TRACEPOINTS:
            argv += ["-e", "sched:" + tp]
        self._spawn(argv, "record.out")
        wait_for_text(self.stdout_path, "Hit Ctrl^C", READY_TIMEOUT_S, self.proc)

    def stop(self):
        cpu = super().stop()
        # On kernels where the function-tracer files give EPERM trace-cmd
        # exits 1 while resetting them, after the data is complete.
        if self.exit_code not in (0, 1):
            raise TracerError(f"trace-cmd record exited {self.exit_code}")
        return cpu

    def parse(self, tids):
        p = subprocess.Popen(
            ["trace-cmd", "report", "-i", self.out],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        events, workload = count_ftrace_text(p.stdout, tids)
        p.wait()
        lost = 0
        st = subprocess.run(
            ["trace-cmd", "report", "--stat", "-i", self.out],
            capture_output=True,
            text=True,
            errors="replace",
        )
        for m in re.finditer(r"^(overrun|commit overrun|dropped events): (\d+)", st.stdout, re.M):
            lost += int(m.group(2))
        return dict(events=events, workload_events=workload, lost=lost, bytes=self.file_bytes())


class Perf(Tracer):
    name = "perf"

    def available(self):
        if not shutil.which("perf"):
            return "perf not installed"
        return None

    def start(self):
        ctl = os.path.join(self.rundir, "ctl")
        ack = os.path.join(self.rundir, "ack")
        os.mkfifo(ctl)
        os.mkfifo(ack)
        argv = ["perf", "record", "-a", "-o", self.out, "-D", "-1", f"--control=fifo:{ctl},{ack}"]
        for tp in TRACEPOINTS:
            argv += ["-e", "sched:" + tp]
        self._spawn(argv, "record.out")
        # Opening the FIFOs blocks until perf opens its ends: do it with a
        # timeout so a perf that failed early does not hang the bench.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                self.ctl = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TracerError("perf record did not open its control FIFO")
                time.sleep(0.02)
        self.ack = os.open(ack, os.O_RDONLY | os.O_NONBLOCK)
        os.write(self.ctl, b"enable\n")
        got = b""
        while b"ack" not in got:
            try:
                got += os.read(self.ack, 64)
            except BlockingIOError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TracerError("perf record did not acknowledge 'enable'")
            time.sleep(0.01)

    def stop(self):
        try:
            cpu = super().stop()
        finally:
            os.close(self.ctl)
            os.close(self.ack)
        # perf record exits with the signal's code after a clean Ctrl-C.
        if self.exit_code not in (0, 130, -2):
            raise TracerError(f"perf record exited {self.exit_code}")
        return cpu

    def parse(self, tids):
        p = subprocess.Popen(
            ["perf", "script", "-i", self.out, "-F", "tid,event", "--show-lost-events"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        events = workload = lost_records = 0
        for line in p.stdout:
            parts = line.split()
            if len(parts) < 2:
                continue
            if parts[1] == "PERF_RECORD_LOST":
                lost_records += int(parts[-1])
                continue
            if not parts[1].startswith("sched:") or not parts[0].isdigit():
                continue
            events += 1
            if int(parts[0]) in tids:
                workload += 1
        p.wait()
        # The per-event LOST_SAMPLES totals and the LOST records count the
        # same drops from two sides; take whichever saw more.
        st = subprocess.run(
            ["perf", "report", "-i", self.out, "--stats"],
            capture_output=True,
            text=True,
            errors="replace",
        )
        lost_samples = 0
        per_event = False
        for line in st.stdout.splitlines():
            if line.endswith(" stats:"):
                per_event = True
            m = re.match(r"\s*LOST_SAMPLES events:\s+(\d+)", line)
            if m and per_event:
                lost_samples += int(m.group(1))
        return dict(
            events=events,
            workload_events=workload,
            lost=max(lost_records, lost_samples),
            bytes=self.file_bytes(),
        )


BPFTRACE_KINDS = {
    "sched_switch": "S",
    "sched_waking": "W",
    "sched_wakeup_new": "N",
    "sched_process_fork": "F",
    "sched_process_exit": "X",
}


class Bpftrace(Tracer):
    name = "bpftrace"

    def available(self):
        return None if shutil.which("bpftrace") else "bpftrace not installed"

    def start(self):
        script = os.path.join(self.rundir, "sched.bt")
        with open(script, "w") as f:
            f.write('BEGIN { printf("ready\\n"); }\n')
            for tp, k in BPFTRACE_KINDS.items():
                f.write(f'tracepoint:sched:{tp} {{ printf("{k} %d\\n", tid); }}\n')
        # stdout to the file, as "bpftrace x.bt > file" does: bpftrace
        # flushes every line there, while its -o file is block-buffered and
        # would hide the "ready" line until enough events pile up.
        self._spawn(["bpftrace", script], os.path.basename(self.out))
        # BEGIN runs once every probe is attached.
        wait_for_text(self.out, "ready\n", READY_TIMEOUT_S, self.proc)

    def stop(self):
        cpu = super().stop()
        if self.exit_code != 0:
            raise TracerError(f"bpftrace exited {self.exit_code}")
        return cpu

    def parse(self, tids):
        events = workload = lost = 0
        with open(self.out, errors="replace") as f, open(self.stderr_path, errors="replace") as e:
            for line in f:
                if len(line) > 2 and line[1] == " " and line[0] in "SWNFX":
                    events += 1
                    if int(line[2:]) in tids:
                        workload += 1
                    continue
                m = re.search(r"Lost (\d+) events", line)
                if m:
                    lost += int(m.group(1))
            for line in e:
                m = re.search(r"Lost (\d+) events", line)
                if m:
                    lost += int(m.group(1))
        return dict(events=events, workload_events=workload, lost=lost, bytes=self.file_bytes())


PEERS = [TraceCmd, Perf, Bpftrace]
