"""Where the CPU goes while a job runs: CPU seconds per JVM thread and per process, and Flink's
own busy/back-pressured time per task, over one measured interval.

- per thread: /proc/<pid>/task/<tid>/schedstat at the start and at the end of the interval: the
  time each thread ran on a CPU, and the time it was ready to run but waited for one (the run
  queue: what other processes on the machine cost it); `jstack` names the threads (nid = tid).
  In PyFlink's thread mode the Python UDFs run on the task thread that calls them, so their cost
  is in that thread's.
- per component of the stack: utime + stime from /proc/<pid>/stat of its processes (with their
  children, less other components: bench.memory.component_processes).
- per task (vertex): Flink's busyTimeMsPerSecond / backPressuredTimeMsPerSecond, sampled every
  second from the REST API and averaged.

Linux only; the JVM's pid comes from the caller (the TaskManager's pid file).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.memory import component_processes
from vigil import flink_cluster

_THREAD = re.compile(r'^"(?P<name>.+?)" .*?nid=(?P<nid>0x[0-9a-f]+)')
_SUBTASK = re.compile(r" \(\d+/\d+\)#\d+$")
_NUMBERED = re.compile(r"(-\d+)+$")
_TICKS = os.sysconf("SC_CLK_TCK")


def jvm_thread_names(pid: int) -> dict[int, str]:
    """{tid: kind of thread} of a JVM; the subtask suffix and trailing numbers are dropped from
    the names, so that threads of the same kind add up."""
    dump = subprocess.run(["jstack", str(pid)], capture_output=True, text=True, timeout=60).stdout
    names = {}
    for line in dump.splitlines():
        match = _THREAD.match(line)
        if match:
            names[int(match.group("nid"), 16)] = _NUMBERED.sub("", _SUBTASK.sub("", match.group("name")))
    return names


def schedstats(pid: int) -> dict[int, tuple[int, int]]:
    """{tid: (ns on a CPU, ns waiting for a CPU)} of every thread of a process."""
    stats = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            on_cpu, waiting, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        stats[int(task.name)] = (int(on_cpu), int(waiting))
    return stats


def process_cpu_s(pids: set[int]) -> float:
    """CPU seconds used so far by these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / _TICKS


class BusyTime:
    """Flink's busy and back-pressured time per vertex of a job, sampled every second."""

    METRICS = ("busyTimeMsPerSecond", "backPressuredTimeMsPerSecond")

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                vertices = flink_cluster.job(self.job_id)["vertices"]
                for vertex in vertices:
                    values = flink_cluster.rest(
                        f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasks/metrics"
                        f"?get={','.join(self.METRICS)}&agg=avg")
                    for value in values:
                        if "avg" in value:
                            self.samples[vertex["name"]][value["id"]].append(float(value["avg"]))
            except (OSError, KeyError, ValueError):
                continue

    def __enter__(self) -> "BusyTime":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def report(self) -> list[str]:
        lines = []
        for name, metrics in self.samples.items():
            busy = metrics.get("busyTimeMsPerSecond") or [float("nan")]
            pressured = metrics.get("backPressuredTimeMsPerSecond") or [float("nan")]
            lines.append(f"  busy {sum(busy) / len(busy) / 10:>3.0f} %, back-pressured "
                         f"{sum(pressured) / len(pressured) / 10:>3.0f} %  {_short(name, 150)}")
        return lines


class CpuProfile:
    """`with CpuProfile(jvm_pids, {"kafka": [pid], ...}) as p: ...` then `p.report(events)`: CPU
    seconds per process and per kind of JVM thread (summed over the JVMs) used in the interval,
    and how long those threads waited for a CPU."""

    def __init__(self, jvm_pids: list[int], processes: dict[str, list[int]]):
        self.jvm_pids, self.processes = jvm_pids, processes
        self.threads: dict[str, list[float]] = {}  # kind -> [s on a CPU, s waiting for one]
        self.per_process: dict[str, float] = {}
        self.seconds = 0.0

    def _schedstats(self) -> dict[tuple[int, int], tuple[int, int]]:
        return {(pid, tid): stat for pid in self.jvm_pids for tid, stat in schedstats(pid).items()}

    def __enter__(self) -> "CpuProfile":
        self._trees = component_processes(self.processes)
        self._processes0 = {name: process_cpu_s(tree) for name, tree in self._trees.items()}
        self._threads0 = self._schedstats()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        threads1 = self._schedstats()
        self.seconds = time.monotonic() - self._t0
        self.per_process = {name: process_cpu_s(tree) - self._processes0[name]
                            for name, tree in self._trees.items()}
        names = {(pid, tid): name for pid in self.jvm_pids for tid, name in jvm_thread_names(pid).items()}
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for key, (on_cpu, waiting) in threads1.items():
            before = self._threads0.get(key, (0, 0))
            kind = totals[names.get(key, "(other JVM threads)")]
            kind[0] += (on_cpu - before[0]) / 1e9
            kind[1] += (waiting - before[1]) / 1e9
        self.threads = dict(totals)

    def us_per_event(self, events: int) -> float:
        """CPU of all the processes per event, in microseconds."""
        return sum(self.per_process.values()) / events * 1e6

    def report(self, events: int, top: int = 8) -> list[str]:
        seconds = max(self.seconds, 1e-9)
        lines = [f"  CPU per event {self.us_per_event(events):.1f} us: " + ", ".join(
            f"{name} {cpu / events * 1e6:.1f} us ({cpu / seconds:.2f} cores)" for name, cpu in self.per_process.items())]
        lines.append("  JVM threads: CPU per event (share of the drain on a CPU, waiting for a CPU)")
        for name, (cpu, waiting) in sorted(self.threads.items(), key=lambda item: -item[1][0])[:top]:
            lines.append(f"  {cpu / events * 1e6:>5.1f} us ({cpu / seconds:>4.0%} on, {waiting / seconds:>4.0%} waiting)  "
                         f"{_short(name, 130)}")
        return lines


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
