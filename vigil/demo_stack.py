"""The I/O of `vigil demo` beyond Kafka: the Flink cluster and the demo's jobs on it, the API, and
bounded waits for the unbounded jobs' results (vigil/demo.py drives them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from vigil import flink_cluster, kafka_io
from vigil.paths import PROJECT_ROOT

# name on the cluster -> (script, extra flags); the names are the jobs' JOB_NAME.
JOB_NAMES = {"ingest": "vigil-ingest", "fraud_detection": "vigil-fraud", "analytics": "vigil-analytics"}
ACTIVE = {"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING"}
# `flink run` compiles the plan in a Python client (a JVM and a Python process): on a loaded
# 2-core machine, three at once measured over 5 minutes (flink_cluster.submit_python_job's bound).
SUBMIT_TIMEOUT_S = 900


def ensure_cluster(slots: int, log=print) -> None:
    """The local cluster (and its SQL Gateway) with a slot for each of the demo's `slots` jobs
    (a TaskManager has one slot: the slots of one JVM would share one Python interpreter lock)."""
    from vigil import sql_gateway

    settings = flink_cluster.ClusterSettings()
    if not flink_cluster.is_running(settings):
        flink_cluster.start(settings, taskmanagers=max(1, -(-slots // settings.slots)), log=log)
    else:  # the demo's jobs already running keep their slots (a second `make demo` adds none)
        missing = slots - len(set(JOB_NAMES.values()) & set(active_jobs()))
        free = flink_cluster.rest("/overview", settings).get("slots-available", 0)
        for _ in range(-(-max(0, missing - free) // settings.slots)):
            flink_cluster.start_taskmanager(settings, log)
    sql_gateway.start(log=log)


def active_jobs() -> dict[str, str]:
    """Job name -> id of the jobs running (or starting) on the cluster."""
    overview = flink_cluster.rest("/jobs/overview")
    return {j["name"]: j["jid"] for j in overview.get("jobs", []) if j.get("state") in ACTIVE}


def submit_missing(jobs: dict[str, list[str]], log=print) -> dict[str, str]:
    """Submit each job of `jobs` (name in JOB_NAMES -> flags) that is not already running, all at
    once (each `flink run` compiles its plan in a Python client of its own); returns name -> id."""
    running = active_jobs()
    ids: dict[str, str] = {}
    errors: list[str] = []
    for job in jobs:
        if JOB_NAMES[job] in running:
            ids[job] = running[JOB_NAMES[job]]
            log(f"      {job}: already running on the cluster (job {ids[job]}), kept")

    def submit(job: str) -> None:
        try:
            ids[job] = submit_job(job, jobs[job])
            log(f"      {job}: submitted, job {ids[job]}")
        except Exception as error:  # reported by the caller, with the others'
            errors.append(f"{job}: {error}")

    threads = [threading.Thread(target=submit, args=(job,)) for job in jobs if job not in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("\n".join(errors))
    return ids


def submit_job(job: str, flags: list[str], timeout_s: float = SUBMIT_TIMEOUT_S) -> str:
    """`flink run --detached -py jobs/<job>.py flags` (flink_cluster.submit_python_job, with a
    longer bound); returns the job id."""
    settings = flink_cluster.ClusterSettings()
    cmd = [str(flink_cluster.flink_home() / "bin" / "flink"), "run", "--detached", "-py",
           str(PROJECT_ROOT / "jobs" / f"{job}.py"), "-pyclientexec", sys.executable, "-pyexec", sys.executable, *flags]
    result = subprocess.run(cmd, env=flink_cluster.environment(settings), capture_output=True, text=True,
                            timeout=timeout_s)
    match = re.search(r"JobID ([0-9a-f]{32})", result.stdout + result.stderr)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"flink run failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return match.group(1)


def job_failed(job_id: str) -> str | None:
    state = flink_cluster.job(job_id).get("state")
    return state if state in ("FAILED", "CANCELED", "FINISHED") else None


def caught_up(bootstrap: str, group: str, topic: str, start: dict, end: dict) -> bool:
    """The group (a Flink source: it commits on each checkpoint) has committed, in every partition
    that received records between `start` and `end`, the offset after the last record there.
    (In a transactional topic the end offset is past the records: commit markers follow them.)"""
    committed = kafka_io.committed_offsets(bootstrap, group, topic)
    targets = after_last_record(bootstrap, topic, start, end)
    return all(committed.get(p, -1) >= target for p, target in targets.items())


TAIL = 500  # records read back per partition to find the last one below the end offset


def after_last_record(bootstrap: str, topic: str, start: dict, end: dict) -> dict:
    """Partition -> the offset after its last committed record below `end` (read_committed), for
    the partitions with offsets between `start` and `end`; a tail of only markers counts as read
    once the group is past its first offset."""
    tail = {p: max(start.get(p, 0), end[p] - TAIL) for p in end if end[p] > start.get(p, 0)}
    targets = dict(tail)
    for message in kafka_io.read(bootstrap, topic, tail, idle_timeout_s=3):
        p = message.partition()
        if p in targets and message.offset() < end[p]:
            targets[p] = max(targets[p], message.offset() + 1)
    return targets


def wait_for(condition, timeout_s: float, what: str, job_ids: list[str] = (), interval: float = 3.0) -> bool:
    """Poll `condition` until true (True) or `timeout_s` (False, with a message); raises if one of
    the jobs has stopped."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job_id in job_ids:
            state = job_failed(job_id)
            if state:
                raise RuntimeError(f"job {job_id} is {state}: see {flink_cluster.ClusterSettings().rest_url}"
                                   f"/#/job/completed/{job_id}/exceptions and .vigil/flink/log")
        try:
            if condition():
                return True
        except (OSError, ValueError):
            pass  # a service still starting, or busy: ask again
        time.sleep(interval)
    print(f"demo: still waiting for {what} after {timeout_s:.0f}s; showing what there is so far", flush=True)
    return False


def api_get(api_url: str, key: str, path: str, **params) -> dict:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    request = urllib.request.Request(f"{api_url}{path}?{query}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


ANSWERS = {"revenue": "/v1/revenue", "funnel": "/v1/funnel", "approval_rate": "/v1/approval-rate",
           "dlq_rate": "/v1/quality/dlq-rate", "alerts_by_pattern": "/v1/fraud/alerts/by-pattern",
           "incidents_by_pattern": "/v1/fraud/incidents/by-pattern"}


def analytics_answers(api_url: str, key: str, since: str) -> dict:
    """The API's answers over this run's minutes (`since`: ISO 8601 UTC)."""
    return {name: api_get(api_url, key, path, grain="minute", **{"from": since}) for name, path in ANSWERS.items()}
