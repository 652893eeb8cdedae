"""Failure drill: a Python task cancelled while its TaskManager's embedded Python starts must not
leave that TaskManager unable to run Python (docs/adr/0006).

In thread mode the first Python operator that opens in a TaskManager JVM starts pemja's one main
interpreter; if its task thread is interrupted while it waits for that start (Flink interrupts a
task it cancels: a failover, a job cancel), pemja keeps the InterruptedException and every later
Python operator in that JVM fails with `java.lang.Error: java.lang.InterruptedException`. The
cluster's warm-up (vigil-runtime's PythonWarmupReporterFactory, on unless VIGIL_PYTHON_WARMUP=0)
starts the interpreter with the TaskManager, before any task can run.

Each trial: a fresh TaskManager (the others SIGKILLed), a tiny thread-mode job (datagen -> Python
scalar UDF -> blackhole, unbounded) submitted and cancelled a chosen delay after its tasks reach
INITIALIZING or after its Python operator begins to start the interpreter (the delays sweep that
start), then the same job again on the same TaskManager: it must have all tasks RUNNING within
60 s of submission and no InterruptedException in its exceptions. Each trial prints where the
cancel reached the task, from the TaskManager's log. The drill ends with one fresh TaskManager
running. Run it on a cluster of its own:

    VIGIL_STATE=/tmp/vigil-pemja-a VIGIL_FLINK_REST_PORT=18081 VIGIL_FLINK_RPC_PORT=16123 \\
    VIGIL_METRICS_PORTS=19250-19260 .venv/bin/python -m pytest tests/e2e/test_python_start_cancel.py -m drill -s -q

and with VIGIL_PYTHON_WARMUP=0 (another VIGIL_STATE) to see what the warm-up prevents.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from vigil import flink_cluster, procs
from vigil.paths import PROJECT_ROOT

# (anchor, ms): cancel that long after the tasks reach INITIALIZING (seen through REST), or after
# the Python operator logs that it starts the interpreter (tailing the TaskManager's log). Without
# the warm-up, on this machine (2 busy cores), the interpreter start begins 0.1-0.25 s after
# INITIALIZING, and a cancel that reaches the task ~110-170 ms after that start began poisons the
# JVM (pemja ignores an interrupt earlier, while it looks for libpython; later Python is up). A
# cancel reaches the task 10-60 ms after it is sent. So: a coarse sweep from INITIALIZING (before,
# around and after the start), and a fine one anchored on the start, where the window is.
TRIALS = (("INITIALIZING", 0), ("INITIALIZING", 200), ("INITIALIZING", 1000), ("INITIALIZING", 2000),
          ("Python start", 70), ("Python start", 90), ("Python start", 100), ("Python start", 110),
          ("Python start", 120), ("Python start", 135), ("Python start", 150), ("Python start", 170))
# No trial starts later than this. A trial takes ~25 s on an idle machine, 30-35 s in CI (10 trials
# in 330 s there): the drill ends < 8 min.
BUDGET_S = 440
POLL_S = 0.015
RUNNING_BOUND_S = 60

# The job: thread mode and the interpreter settings of the project's jobs (vigil/flink_env.py),
# no restarts (a failure of the second job is the finding, not something to retry).
JOB = '''
import os, sys, sysconfig
from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf


@udf(result_type=DataTypes.BIGINT())
def plus_one(n):
    return n + 1


def main(name, project_root):
    python = os.environ.get("VIGIL_PYTHON", sys.executable)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in {
        "pipeline.name": name,
        "python.execution-mode": "thread",
        "python.executable": python,
        "python.client.executable": python,
        "python.pythonpath": os.pathsep.join([project_root, sysconfig.get_paths()["purelib"]]),
        "restart-strategy.type": "none",
        "parallelism.default": "1",
    }.items():
        t_env.get_config().set(key, value)
    t_env.execute_sql("CREATE TEMPORARY TABLE numbers (n BIGINT) WITH ("
                      "'connector' = 'datagen', 'rows-per-second' = '50')")
    t_env.execute_sql("CREATE TEMPORARY TABLE sink (n BIGINT) WITH ('connector' = 'blackhole')")
    t_env.create_temporary_function("plus_one", plus_one)
    t_env.execute_sql("INSERT INTO sink SELECT plus_one(n) FROM numbers")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
'''


@dataclass
class Outcome:
    anchor: str
    delay_ms: int
    cancel_sent_ms: float          # after the anchor was seen
    timing: str                    # where the cancel landed, as the TaskManager logged it
    first_job: str
    second_job: str
    seconds_to_running: float | None
    poisoned: bool

    @property
    def ok(self) -> bool:
        return not self.poisoned and self.seconds_to_running is not None

    def line(self) -> str:
        verdict = ("POISONED (java.lang.Error: java.lang.InterruptedException)" if self.poisoned
                   else f"ok, all tasks RUNNING {self.seconds_to_running:.1f} s after submission" if self.ok
                   else f"FAILED: {self.second_job}")
        return (f"cancel {self.delay_ms:>4} ms after {self.anchor} (sent at {self.cancel_sent_ms:.0f} ms; "
                f"TaskManager log: {self.timing}) -> first job {self.first_job}; second job {verdict}")


@pytest.mark.drill
def test_task_cancelled_while_python_starts_leaves_taskmanager_able_to_run_python(flink_without_kafka, tmp_path):
    cluster = flink_without_kafka
    script = tmp_path / "python_start_cancel_job.py"
    script.write_text(JOB)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    print(f"\npython warm-up at TaskManager start: {'on' if cluster.python_warmup else 'off (VIGIL_PYTHON_WARMUP=0)'}")
    try:
        for trial, (anchor, delay_ms) in enumerate(TRIALS, 1):
            if time.monotonic() - started > BUDGET_S:
                break
            outcome = _trial(cluster, script, trial, anchor, delay_ms)
            outcomes.append(outcome)
            print(f"trial {trial}/{len(TRIALS)}: {outcome.line()}", flush=True)
    finally:
        _fresh_taskmanager(flink_without_kafka)  # later tests need one TaskManager that can run Python
    print(f"{sum(o.ok for o in outcomes)}/{len(outcomes)} trials passed, "
          f"{sum(o.poisoned for o in outcomes)} poisoned, in {time.monotonic() - started:.0f} s")
    assert len(outcomes) == len(TRIALS), f"only {len(outcomes)} trials within {BUDGET_S} s"
    assert all(o.ok for o in outcomes), "\n".join(o.line() for o in outcomes if not o.ok)


def _trial(settings, script: Path, trial: int, anchor: str, delay_ms: int) -> Outcome:
    tm_pid = _fresh_taskmanager(settings)
    log = _log_file(tm_pid)
    first = flink_cluster.submit_python_job(script, [f"python-start-cancel-{trial}-first", str(PROJECT_ROOT)],
                                            settings=settings)
    try:
        if anchor == "INITIALIZING":
            anchored_at = _wait_for_tasks(settings, first, lambda t: t["initializing"] + t["running"] > 0,
                                          "the first job's tasks to initialise", interval=POLL_S)
        else:
            assert log is not None, f"no log file of TaskManager {tm_pid}"
            anchored_at = _wait_for_log_line(log, _MARKERS["python"][1], "the Python operator to start Python")
        time.sleep(max(0.0, anchored_at + delay_ms / 1000 - time.monotonic()))
        sent_ms = (time.monotonic() - anchored_at) * 1000
        flink_cluster.cancel(first, settings)
        first_state = _wait_for_end(settings, first)
    except BaseException:
        _cancel_quietly(settings, first)
        raise
    submitted = time.monotonic()
    second = flink_cluster.submit_python_job(script, [f"python-start-cancel-{trial}-second", str(PROJECT_ROOT)],
                                             settings=settings)
    try:
        seconds_to_running, state = None, "?"
        while time.monotonic() < submitted + RUNNING_BOUND_S:
            job = _job_overview(settings, second)
            state = job["state"] if job else "?"
            if job and state == "RUNNING" and job["tasks"]["running"] == job["tasks"]["total"]:
                seconds_to_running = time.monotonic() - submitted
                break
            if state in ("FAILED", "CANCELED", "FINISHED"):
                break
            time.sleep(0.1)
        exceptions = _exception_text(settings, second)
    finally:
        _cancel_quietly(settings, second)
    poisoned = "InterruptedException" in exceptions
    summary = (f"{state}: {_first_line(exceptions)}" if exceptions
               else f"not all tasks RUNNING within {RUNNING_BOUND_S} s (job {state})")
    return Outcome(anchor, delay_ms, sent_ms, _cancel_timing(log), first_state, summary,
                   None if poisoned or exceptions else seconds_to_running, poisoned)


# --- TaskManagers ---------------------------------------------------------------------------------

def _fresh_taskmanager(settings) -> int:
    """SIGKILL every TaskManager, start one, and wait until the JobManager knows only that one
    (a killed TaskManager stays registered until its heartbeat fails, and a job could be
    scheduled into its slot meanwhile)."""
    for pid in flink_cluster.taskmanager_pids():
        procs.kill_tree(pid, signal.SIGKILL)
        procs.wait_until(lambda: not procs.is_alive(pid), 10, f"TaskManager {pid} to die")
    before = _taskmanager_ids(settings)
    pid = flink_cluster.start_taskmanager(settings, log=lambda *_: None)
    new = _taskmanager_ids(settings) - before
    procs.wait_until(lambda: _taskmanager_ids(settings) == new, 60, "the killed TaskManagers to be unregistered")
    return pid


def _taskmanager_ids(settings) -> set[str]:
    return {tm["id"] for tm in flink_cluster.rest("/taskmanagers", settings)["taskmanagers"]}


def _log_file(pid: int) -> Path | None:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for arg in args:
        if arg.startswith(b"-Dlog.file="):
            return Path(arg.split(b"=", 1)[1].decode())
    return None


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_MARKERS = {"initializing": ("PythonCalc", "switched from DEPLOYING to INITIALIZING"),
            "python": ("", "Python interpreter path:"),  # logged just before pemja starts the interpreter
            "running": ("PythonCalc", "switched from INITIALIZING to RUNNING"),
            "canceling": ("PythonCalc", "to CANCELING")}


def _wait_for_log_line(log: Path, marker: str, what: str) -> float:
    """Tail the (fresh) TaskManager's log until a line holds `marker`; the monotonic time seen."""
    deadline, offset, tail = time.monotonic() + RUNNING_BOUND_S, 0, b""
    while time.monotonic() < deadline:
        with open(log, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        tail = (tail + chunk)[-4096:]
        if marker.encode() in tail:
            return time.monotonic()
        time.sleep(0.003)
    raise TimeoutError(f"timed out after {RUNNING_BOUND_S} s waiting for {what} ({log})")


def _cancel_timing(log: Path | None) -> str:
    """Where the first job's cancel reached its Python task, from the (fresh) TaskManager's log:
    ms after the task's INITIALIZING and after the operator began to start Python."""
    if log is None or not log.exists():
        return "not found"
    at = {}
    for line in log.read_text(errors="replace").splitlines():
        for key, (task, marker) in _MARKERS.items():
            if key not in at and task in line and marker in line and (m := _STAMP.match(line)):
                at[key] = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
    if "initializing" not in at or "canceling" not in at:
        return "no cancel of the Python task logged"

    def ms(since: str) -> str:
        return f"{(at['canceling'] - at[since]).total_seconds() * 1000:.0f} ms"
    where = "after it was RUNNING" if at.get("running", at["canceling"]) < at["canceling"] else "while INITIALIZING"
    python = (f"{ms('python')} after its Python start began" if at.get("python", at["canceling"]) < at["canceling"]
              else "before its Python start began")
    return f"cancel {ms('initializing')} after the Python task's INITIALIZING, {python}, {where}"


# --- jobs through REST ----------------------------------------------------------------------------
# /jobs/overview is asked of the JobMaster on every call; /jobs/<id> comes from a cache that lives
# web.refresh-interval (3 s), too coarse to time a cancel.

def _job_overview(settings, job_id: str) -> dict | None:
    try:
        jobs = flink_cluster.rest("/jobs/overview", settings, timeout=5)["jobs"]
    except OSError:
        return None
    return next((j for j in jobs if j["jid"] == job_id), None)


def _tasks(settings, job_id: str) -> dict | None:
    job = _job_overview(settings, job_id)
    return job["tasks"] if job else None


def _wait_for_tasks(settings, job_id: str, check, what: str, interval: float) -> float:
    """Poll the job's task counts until `check` holds; the monotonic time it was seen."""
    deadline = time.monotonic() + RUNNING_BOUND_S
    while time.monotonic() < deadline:
        tasks = _tasks(settings, job_id)
        if tasks and check(tasks):
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"timed out after {RUNNING_BOUND_S} s waiting for {what}")


def _wait_for_end(settings, job_id: str) -> str:
    found = {}

    def ended() -> bool:
        job = _job_overview(settings, job_id)
        found["state"] = job["state"] if job else "?"
        return found["state"] in ("CANCELED", "FAILED", "FINISHED")
    procs.wait_until(ended, RUNNING_BOUND_S, f"job {job_id} to end", interval=0.05)
    return found["state"]


def _cancel_quietly(settings, job_id: str) -> None:
    try:
        job = _job_overview(settings, job_id)
        if job and job["state"] not in ("CANCELED", "FAILED", "FINISHED"):
            flink_cluster.cancel(job_id, settings)
            _wait_for_end(settings, job_id)
    except (OSError, TimeoutError):
        pass


def _exception_text(settings, job_id: str) -> str:
    """Every stack trace the job recorded (root cause and history), empty if none."""
    try:
        found = flink_cluster.rest(f"/jobs/{job_id}/exceptions", settings)
    except OSError:
        return ""
    traces = [entry.get("stacktrace") or "" for entry in found.get("exceptionHistory", {}).get("entries", [])]
    traces.append(found.get("root-exception") or "")
    return "\n".join(t for t in traces if t)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:160] if text.strip() else ""
