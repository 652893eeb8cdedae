"""Flink SQL for analysts on the local cluster: an ad hoc streaming SELECT on events_clean through
the SQL Gateway's REST API returns the events written, with the catalog loaded by the session;
`vigil sql -f FILE` submits a file as one detached job (the SQL client); and (make drills: two
more client runs) the job, stopped with a savepoint, resumes from it when the same file is
submitted again (its operator uids match)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from tests.analytics_checks import analytics_topics, shop_events, write_events
from vigil import flink_cluster, procs, sql_gateway
from vigil.paths import PROJECT_ROOT
from vigil.sql_gateway import Session


@pytest.fixture(scope="module")
def gateway(flink):
    """The SQL Gateway `vigil cluster up` starts; stopped at the end only if this module started it."""
    settings = sql_gateway.GatewaySettings()
    was_running = sql_gateway.is_running(settings)
    sql_gateway.start(settings, log=lambda *_: None)
    yield settings.url
    if not was_running:
        sql_gateway.stop(log=lambda *_: None)


def test_ad_hoc_streaming_select_through_the_gateway(gateway, kafka, schema_registry):
    names = analytics_topics(kafka)
    start = int(time.time() * 1000) - 60_000
    events = shop_events(seed=5, start_ms=start, count=200, span_ms=50_000)
    write_events(kafka, schema_registry, names["clean"], events)
    with Session.open(gateway) as session:
        assert ["events_clean"] in session.run("SHOW TABLES")
        # Unbounded: the query would run for ever; the session reads what it needs and closes it.
        rows = session.run(f"SELECT event_id, tenant_id, event_type FROM events_clean "
                           f"/*+ OPTIONS('topic' = '{names['clean']}') */", max_rows=len(events), timeout_s=90)
    assert sorted(map(tuple, rows)) == sorted((e["event_id"], e["tenant_id"], e["event_type"]) for e in events)


def _window_job_file(kafka, schema_registry, tmp_path):
    """A SQL file counting a fresh topic's events per tenant and minute into a blackhole table."""
    names = analytics_topics(kafka)
    write_events(kafka, schema_registry, names["clean"],
                 shop_events(seed=6, start_ms=int(time.time() * 1000) - 60_000, count=100, span_ms=50_000))
    sql = tmp_path / "tenant_counts.sql"
    sql.write_text(f"""-- events per tenant and minute, to a table that discards them
CREATE TEMPORARY TABLE discard (tenant_id STRING, minute_start TIMESTAMP(3), events BIGINT)
  WITH ('connector' = 'blackhole');
CREATE TEMPORARY VIEW test_events AS SELECT * FROM events_clean /*+ OPTIONS('topic' = '{names['clean']}') */;
INSERT INTO discard
SELECT tenant_id, window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE test_events, DESCRIPTOR(row_time), INTERVAL '1' MINUTE))
GROUP BY tenant_id, window_start, window_end;
""")
    return sql, f"test-sql-{names['prefix']}"


def test_sql_file_runs_as_a_detached_job_with_explicit_uids(flink, kafka, schema_registry, tmp_path):
    sql, job_name = _window_job_file(kafka, schema_registry, tmp_path)
    job_id = _vigil_sql(sql, "--job-name", job_name)    # returns once submitted
    try:
        _wait_running(job_id)
        assert flink_cluster.job(job_id)["name"] == job_name
        assert any("Window" in name for name in _operator_names(job_id)), _operator_names(job_id)
    finally:
        flink_cluster.cancel(job_id)


@pytest.mark.long
def test_sql_file_job_resumes_from_its_savepoint(flink, kafka, schema_registry, tmp_path):
    sql, job_name = _window_job_file(kafka, schema_registry, tmp_path)
    first = _vigil_sql(sql, "--job-name", job_name)
    savepoint = None
    try:
        _wait_running(first)
        savepoint = _stop_with_savepoint(first)
        second = _vigil_sql(sql, "--job-name", job_name, "--savepoint", savepoint)
        _wait_running(second)
        # Restored: every operator found its state in the savepoint (an unmatched uid would fail
        # the submission, since unclaimed state is not allowed by default).
        restored = flink_cluster.rest(f"/jobs/{second}/checkpoints")["latest"]["restored"]
        assert restored and restored["external_path"].rstrip("/") == savepoint.rstrip("/")
        flink_cluster.cancel(second)
    finally:
        if savepoint is None:
            flink_cluster.cancel(first)


def _vigil_sql(path, *extra: str) -> str:
    result = subprocess.run([sys.executable, "-m", "vigil.cli", "sql", "-f", str(path), *extra], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout.split("job id ")[1].split(";")[0]


def _wait_running(job_id: str) -> None:
    procs.wait_until(lambda: flink_cluster.job(job_id)["state"] == "RUNNING"
                     and all(v["status"] == "RUNNING" for v in flink_cluster.job(job_id)["vertices"]),
                     120, f"job {job_id} to run")


def _operator_names(job_id: str) -> list[str]:
    return [v["name"] for v in flink_cluster.job(job_id)["vertices"]]


def _stop_with_savepoint(job_id: str) -> str:
    directory = (flink_cluster.savepoint_dir() / f"test-{datetime.now(timezone.utc):%H%M%S}").as_uri()
    trigger = flink_cluster.rest(f"/jobs/{job_id}/stop", method="POST",
                                 body={"targetDirectory": directory, "drain": False})["request-id"]
    found: dict = {}

    def done() -> bool:
        status = flink_cluster.rest(f"/jobs/{job_id}/savepoints/{trigger}")
        if status["status"]["id"] == "COMPLETED":
            operation = status["operation"]
            assert "location" in operation, operation
            found["path"] = operation["location"]
            return True
        return False
    procs.wait_until(done, 120, f"the savepoint of job {job_id}", interval=0.5)
    return found["path"]
