"""Where a Flink job's CPU goes: jstack samples of its JVM, counted per task thread (operator
chain) and per method on top of the running stacks. A sampling profiler with no agent: coarse
(a sample every `interval_s`), but it needs nothing beyond the JDK's jstack.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections import Counter
from pathlib import Path

from vigil import procs

HEADER = re.compile(r'^"(.+?)" #\d+.*?cpu=([\d.]+)ms')
FRAME = re.compile(r"^\s+at ([\w$.<>/]+)\(")
# Frames that say which operator's code runs (the first one found walking down from the top).
OPERATOR_PACKAGES = ("org.apache.flink.table.runtime.operators.", "org.apache.flink.streaming.api.operators.python",
                     "org.apache.flink.connector.kafka.", "org.apache.flink.formats.", "vigil.",
                     "org.apache.flink.cep.", "org.apache.flink.runtime.state.", "pemja.")
# Runnable in the JVM's eyes, idle in fact (waiting in native I/O).
IDLE_TOPS = ("sun.nio.ch.EPoll.wait", "sun.nio.ch.Net.poll", "sun.nio.ch.SocketDispatcher.read0",
             "java.net.SocketInputStream.socketRead0", "sun.nio.ch.Net.accept", "java.lang.Thread.sleep",
             "java.lang.ref.Reference.waitForReferencePendingList", "java.lang.Object.wait")


def threads_of(dump: str) -> list[tuple[str, float, str, list[str]]]:
    """(name without its #n suffix, CPU ms so far, state, frames) of every thread in a jstack dump."""
    out = []
    for block in dump.split("\n\n"):
        lines = block.splitlines()
        if not lines or not (header := HEADER.match(lines[0])):
            continue
        state = next((line.split(":", 1)[1].strip() for line in lines[1:3] if "java.lang.Thread.State:" in line), "")
        frames = [m.group(1) for line in lines if (m := FRAME.match(line))]
        out.append((re.sub(r"#\d+$", "", header.group(1)), float(header.group(2)), state, frames))
    return out


def jvm_of(root_pid: int) -> int | None:
    for pid in [root_pid, *procs.descendants(root_pid)]:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                return pid
        except OSError:
            continue
    return None


class StackSampler:
    """jstack of one JVM every `interval_s` in a thread, while used as a context manager: CPU time
    per thread between the first and the last dump (exact, from the JVM's own accounting), and
    which code was on top of the running task threads (sampled)."""

    def __init__(self, jvm_pid: int, interval_s: float = 0.5):
        self.jvm_pid, self.interval_s = jvm_pid, interval_s
        self.samples = 0
        self.first_cpu: dict[str, float] = {}
        self.last_cpu: dict[str, float] = {}
        self.tops: Counter = Counter()       # method on top of a running thread's stack
        self.operators: Counter = Counter()  # first operator-level frame of a running thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            dump = subprocess.run(["jstack", str(self.jvm_pid)], capture_output=True, text=True).stdout
            if dump:
                self._count(threads_of(dump))

    def _count(self, threads) -> None:
        self.samples += 1
        cpu: dict[str, float] = {}
        for name, cpu_ms, state, frames in threads:
            cpu[name] = cpu.get(name, 0.0) + cpu_ms
            if state.startswith("RUNNABLE") and frames and not frames[0].startswith(IDLE_TOPS):
                self.tops[frames[0]] += 1
                self.operators[next((f for f in frames if f.startswith(OPERATOR_PACKAGES)), frames[0])] += 1
        if not self.first_cpu:
            self.first_cpu = cpu
        self.last_cpu = cpu

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def report(self, top: int = 12) -> list[str]:
        used = {name: ms - self.first_cpu.get(name, 0.0) for name, ms in self.last_cpu.items()}
        total = sum(v for v in used.values() if v > 0) or 1.0
        n = max(1, sum(self.tops.values()))
        lines = [f"CPU of the job's JVM by thread ({total / 1000:,.1f} CPU s between {self.samples} jstack dumps):"]
        lines += [f"  {ms / total:>5.1%}  {ms / 1000:7.1f} s  {name[:110]}"
                  for name, ms in sorted(used.items(), key=lambda kv: -kv[1])[:top]]
        lines.append("operator code on the running threads' stacks (share of running-thread samples):")
        lines += [f"  {c / n:>5.0%}  {name}" for name, c in self.operators.most_common(top)]
        lines.append("methods on top of the running threads:")
        lines += [f"  {c / n:>5.0%}  {name}" for name, c in self.tops.most_common(top)]
        return lines
