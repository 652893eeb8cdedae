"""Starting, checking and stopping the local services' processes, by pid file.

Only processes this project started (recorded in a pid file under the state folder) are ever
signalled: `stop` never searches for processes by name. A pid file holds the pid and the
process's start time (clock ticks since boot, /proc/<pid>/stat field 22): pids are reused (this
machine kind wraps at 32,768, and a test run starts tens of thousands of processes), and a stale
file must never make us signal whatever process got its number since.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence


def read_pid(pid_file: Path) -> int | None:
    """The recorded pid; None when there is none, or when a live process holds that pid but
    started at another time than the one recorded (the pid was reused)."""
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    recorded = fields[1] if len(fields) > 1 else None
    now = start_time(pid)
    if recorded is not None and now is not None and now != recorded:
        return None
    return pid


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the command (which may hold spaces and parentheses): state is field 3.
            return stat.read().rsplit(") ", 1)[1].split()[22 - 3]
    except (OSError, IndexError):
        return None


def record_pid(pid_file: Path, pid: int) -> None:
    """Write `pid` and its start time to `pid_file` (read back by read_pid)."""
    pid_file.write_text(f"{pid} {start_time(pid) or ''}".strip())


def is_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not alive for our purposes. Nor is a thread of another
    # process: thread ids share the pid space (a JVM makes hundreds), /proc/<tid> answers, and
    # kill(tid) signals the whole process that thread belongs to.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return fields.get("Tgid", "").strip() == str(pid) and not fields.get("State", "").strip().startswith("Z")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def spawn(cmd: Sequence[str], log_file: Path, pid_file: Path, env: dict | None = None,
          cwd: Path | None = None) -> int:
    """Start `cmd` detached in its own session, output appended to `log_file`; record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    record_pid(pid_file, proc.pid)
    return proc.pid


def stop(pid_file: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after `timeout`; True if something was stopped."""
    pid = read_pid(pid_file)
    if not is_alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not is_alive(pid), timeout, f"pid {pid} to exit")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(pid), 10, f"pid {pid} to die")
    pid_file.unlink(missing_ok=True)
    return True


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (Linux /proc)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            stack += children
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and all its descendants, as when the machine or container they run in dies."""
    for victim in [pid, *descendants(pid)]:
        try:
            os.kill(victim, sig)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def exclusive(lock_file: Path):
    """Hold an exclusive lock on `lock_file` (created if missing) for the block: one process at a
    time on this machine (parallel test workers, two shells)."""
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
