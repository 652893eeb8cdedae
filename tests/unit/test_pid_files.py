"""Pid files name a process, not a number: a stale file whose pid was reused must not make the
project signal the process that holds that number now."""

from __future__ import annotations

import os
import subprocess
import sys

from vigil import procs


def test_a_recorded_live_process_is_read_back(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs.record_pid(tmp_path / "x.pid", child.pid)
        assert (tmp_path / "x.pid").read_text().split()[0] == str(child.pid)
        assert procs.read_pid(tmp_path / "x.pid") == child.pid
        assert procs.is_alive(procs.read_pid(tmp_path / "x.pid"))
    finally:
        child.kill()
        child.wait()


def test_a_pid_now_held_by_a_process_started_at_another_time_reads_as_none(tmp_path):
    # This test's own process stands for whatever got the stale file's number since.
    real = procs.start_time(os.getpid())
    assert real is not None and real.isdigit()
    (tmp_path / "stale.pid").write_text(f"{os.getpid()} {int(real) + 1}")
    assert procs.read_pid(tmp_path / "stale.pid") is None


def test_a_dead_pid_reads_back_and_is_not_alive(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    procs.record_pid(tmp_path / "dead.pid", child.pid)
    child.wait()
    assert procs.read_pid(tmp_path / "dead.pid") == child.pid
    assert not procs.is_alive(child.pid)


def test_files_of_older_releases_and_garbage(tmp_path):
    (tmp_path / "old.pid").write_text(f"{os.getpid()}\n")        # a pid alone: taken as written
    assert procs.read_pid(tmp_path / "old.pid") == os.getpid()
    for junk in ("", "abc", "12 x y", "\x00\xff"):
        (tmp_path / "junk.pid").write_text(junk)
        assert procs.read_pid(tmp_path / "junk.pid") in (None, 12)
    assert procs.read_pid(tmp_path / "missing.pid") is None


def test_a_thread_id_is_not_a_live_process():
    # A stale pid file may hold a number the kernel has since given to a thread of a running JVM
    # (the JobManager); signalling it would kill that JVM.
    import threading
    tids, ready, done = [], threading.Event(), threading.Event()

    def run():
        tids.append(threading.get_native_id())
        ready.set()
        done.wait(10)
    thread = threading.Thread(target=run)
    thread.start()
    try:
        ready.wait(5)
        assert tids[0] != os.getpid() and os.path.exists(f"/proc/{tids[0]}/stat")
        assert not procs.is_alive(tids[0])
        assert procs.is_alive(os.getpid())
    finally:
        done.set()
        thread.join()
