"""Resident memory of the local stack: a sampler thread that keeps the peak per component.

Components are processes this project started (pid files) plus their descendants, e.g. the
Python workers a TaskManager spawns. Reads /proc only (Linux).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from vigil.procs import descendants


def tree_rss_bytes(pid: int) -> int:
    return rss_bytes({pid, *descendants(pid)})


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def component_processes(components: dict[str, list[int]]) -> dict[str, set[int]]:
    """Each component's processes: its own pids and their descendants, but not the processes of
    another component (a benchmark that starts the cluster has the TaskManagers as children: they
    count as the TaskManager's, not twice).

    >>> component_processes({"me": [os.getpid()], "gone": [2**22 + 1]})["gone"]
    {4194305}
    """
    roots = {pid for pids in components.values() for pid in pids if pid}
    trees = {}
    for name, pids in components.items():
        tree, stack = {pid for pid in pids if pid}, [pid for pid in pids if pid]
        while stack:
            for child in _children(stack.pop()):
                if child not in roots and child not in tree:
                    tree.add(child)
                    stack.append(child)
        trees[name] = tree
    return trees


def rss_bytes(pids: set[int], field: str = "VmRSS") -> int:
    """Resident memory of these processes now (VmRSS), or at its peak so far (field="VmHWM")."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class PeakMemory:
    """`with PeakMemory({"kafka": pids_function, ...}) as m: ...` then `m.peaks`, `m.peak_total`.
    A component is its processes and their children, less other components (component_processes)."""

    def __init__(self, components: dict[str, callable], interval_s: float = 0.5):
        self.components = components  # name -> function returning the current pids
        self.interval_s = interval_s
        self.peaks: dict[str, int] = {name: 0 for name in components}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            trees = component_processes({name: pids() for name, pids in self.components.items()})
            for name, tree in trees.items():
                rss = rss_bytes(tree)
                self.peaks[name] = max(self.peaks[name], rss)
                total += rss
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> str:
        parts = ", ".join(f"{name} {rss / 2**20:,.0f} MiB" for name, rss in self.peaks.items())
        return f"peak RSS of the local stack: {self.peak_total / 2**20:,.0f} MiB ({parts})"


def own_pid() -> list[int]:
    return [os.getpid()]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def now_ms() -> float:
    return time.time() * 1000
