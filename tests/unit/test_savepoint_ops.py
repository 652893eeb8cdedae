"""The savepoint commands' logic without a cluster: REST answers as Flink 2.2 writes them, job
resolution and its exit codes, the latest savepoint, retention, fingerprints, the catalog file,
and the `flink run` arguments of a restore."""

from __future__ import annotations

import pytest

from vigil import savepoint_ops as ops
from vigil.savepoint_ops import CatalogEntry, JobInfo

INGEST_A, INGEST_B, FRAUD = "a" * 32, "b" * 32, "c" * 32


def job(job_id=INGEST_A, name="vigil-ingest", state="RUNNING", start=1000):
    return JobInfo(job_id, name, state, start)


def entry(name="vigil-ingest", taken=1, path=None, job_id=INGEST_A):
    return CatalogEntry(name, job_id, path or f"file:/sp/{name}-{taken}", taken, "savepoint")


def test_overview_parsed_newest_first():
    answer = {"jobs": [{"jid": INGEST_A, "name": "vigil-ingest", "state": "CANCELED", "start-time": 1},
                       {"jid": INGEST_B, "name": "vigil-ingest", "state": "RUNNING", "start-time": 9,
                        "end-time": -1, "duration": 5, "tasks": {}}]}
    assert [j.job_id for j in ops.parse_overview(answer)] == [INGEST_B, INGEST_A]
    assert ops.parse_overview({"jobs": []}) == []


def test_job_found_by_name_submit_name_or_id_among_running_jobs():
    jobs = [job(INGEST_A, state="CANCELED"), job(INGEST_B, start=2000), job(FRAUD, "vigil-fraud")]
    assert ops.resolve_job(jobs, "vigil-ingest").job_id == INGEST_B   # the cancelled one does not count
    assert ops.resolve_job(jobs, "ingest").job_id == INGEST_B
    assert ops.resolve_job(jobs, "fraud_detection").job_id == FRAUD
    assert ops.resolve_job(jobs, "fraud").job_id == FRAUD
    assert ops.resolve_job(jobs, INGEST_A).state == "CANCELED"         # an id names one job, whatever its state


def test_unknown_or_ambiguous_job_is_exit_2_with_what_to_do():
    jobs = [job(INGEST_A), job(INGEST_B, start=2000)]
    with pytest.raises(ops.OpsError) as ambiguous:
        ops.resolve_job(jobs, "vigil-ingest")
    assert ambiguous.value.code == 2
    assert INGEST_A in str(ambiguous.value) and INGEST_B in str(ambiguous.value) and "job id" in str(ambiguous.value)
    with pytest.raises(ops.OpsError) as missing:
        ops.resolve_job(jobs, "vigil-analytics")
    assert missing.value.code == 2 and "vigil jobs" in str(missing.value)
    with pytest.raises(ops.OpsError) as unknown:
        ops.job_target("nonsense")
    assert unknown.value.code == 2


def test_checkpoint_summary_from_a_flink_answer():
    answer = {
        "counts": {"restored": 1, "total": 7, "in_progress": 0, "completed": 6, "failed": 1},
        "latest": {
            "completed": {"id": 6, "status": "COMPLETED", "is_savepoint": False, "trigger_timestamp": 100,
                          "latest_ack_timestamp": 120, "state_size": 4096,
                          "external_path": "file:/c/chk-6"},
            "savepoint": {"id": 4, "status": "COMPLETED", "is_savepoint": True, "latest_ack_timestamp": 90,
                          "state_size": 2048, "external_path": "file:/s/savepoint-aaaaaa-123"},
            "failed": {"id": 5, "failure_timestamp": 95, "failure_message": "Checkpoint expired"},
            "restored": {"id": 3, "restore_timestamp": 50, "is_savepoint": True,
                         "external_path": "file:/s/savepoint-bbbbbb-456"}},
        "history": []}
    summary = ops.checkpoint_summary(answer)
    assert summary["checkpoint"] == {"id": 6, "path": "file:/c/chk-6", "at_ms": 120, "size": 4096}
    assert summary["savepoint"]["path"] == "file:/s/savepoint-aaaaaa-123"
    assert summary["restored"]["at_ms"] == 50
    assert summary["failed"]["message"] == "Checkpoint expired"
    fresh = ops.checkpoint_summary({"counts": {}, "latest": {"completed": None, "savepoint": None,
                                                               "failed": None, "restored": None}})
    assert fresh["checkpoint"] is None and fresh["restored"] is None and fresh["failed"] is None


def test_trigger_answers():
    assert ops.trigger_outcome({"status": {"id": "IN_PROGRESS"}}) == ("IN_PROGRESS", None)
    assert ops.trigger_outcome({"status": {"id": "COMPLETED"}, "operation": {"location": "file:/s/sp-1"}}) == \
        ("COMPLETED", "file:/s/sp-1")
    failed = {"status": {"id": "COMPLETED"}, "operation": {"failure-cause": {
        "class": "java.util.concurrent.CompletionException",
        "stack-trace": "java.util.concurrent.CompletionException: boom\n\tat x.y(Z.java:1)\n"
                       "Caused by: org.apache.flink.runtime.checkpoint.CheckpointException: "
                       "Task has failed.\n\tat q.r(S.java:2)\n",
        "serialized-throwable": "rO0..."}}}
    status, text = ops.trigger_outcome(failed)
    assert status == "FAILED"
    assert text.endswith("CheckpointException: Task has failed.") and "at x.y" not in text
    assert ops.failure_text({}) == "no failure cause given"


def test_fingerprint_follows_vertex_ids_not_names_or_order():
    plan = {"plan": {"jid": INGEST_A, "name": "vigil-ingest", "type": "STREAMING", "nodes": [
        {"id": "cbc357ccb763df2852fee8c4fc7d55f2", "parallelism": 1, "operator": "", "description": "Source: raw"},
        {"id": "90bea66de1c231edf33913ecd54406c1", "parallelism": 1, "description": "OverAggregate"}]}}
    renamed = {"plan": {"nodes": [{"id": "90bea66de1c231edf33913ecd54406c1", "description": "other name",
                                   "parallelism": 2},
                                  {"id": "cbc357ccb763df2852fee8c4fc7d55f2"}]}}
    changed = {"plan": {"nodes": [{"id": "cbc357ccb763df2852fee8c4fc7d55f2"}, {"id": "0" * 32}]}}
    assert ops.plan_fingerprint(plan) == ops.plan_fingerprint(renamed)
    assert ops.plan_fingerprint(plan) != ops.plan_fingerprint(changed)
    assert len(ops.plan_fingerprint(plan)) == 16


def test_latest_savepoint_is_per_job_name():
    entries = [entry(taken=1), entry(taken=5), entry("vigil-fraud", taken=9), entry(taken=3)]
    assert ops.latest_entry(entries, "vigil-ingest").taken_ms == 5
    assert ops.latest_entry(entries, "vigil-fraud").taken_ms == 9
    assert ops.latest_entry(entries, "vigil-analytics") is None


def test_retention_keeps_the_newest_n_per_job_and_never_zero():
    entries = [entry(taken=t) for t in (1, 4, 2, 3)] + [entry("vigil-fraud", taken=1)]
    kept, gone = ops.retention(entries, 2)
    assert sorted((e.job_name, e.taken_ms) for e in kept) == [("vigil-fraud", 1), ("vigil-ingest", 3), ("vigil-ingest", 4)]
    assert sorted(e.taken_ms for e in gone) == [1, 2]
    assert ops.retention(entries, 10) == (sorted(entries, key=lambda e: (e.job_name, -e.taken_ms)), [])
    with pytest.raises(ValueError):
        ops.retention(entries, 0)


def test_catalog_round_trip_and_deletion_only_of_savepoint_folders(tmp_path):
    real = tmp_path / "savepoint-aaaaaa-0123456789ab"
    real.mkdir()
    (real / "_metadata").write_bytes(b"x")
    not_a_savepoint = tmp_path / "important"
    not_a_savepoint.mkdir()
    entries = [entry(path=real.as_uri(), taken=1), entry(path=not_a_savepoint.as_uri(), taken=2),
               entry(path="s3://bucket/savepoint-x", taken=3)]
    catalog = tmp_path / "catalog.json"
    ops.save_catalog(entries, catalog)
    assert ops.load_catalog(catalog) == entries
    assert ops.load_catalog(tmp_path / "none.json") == []
    assert [ops.delete_savepoint(e) for e in entries] == [True, False, False]
    assert not real.exists() and not_a_savepoint.exists()


def test_restore_arguments_never_drop_state_unless_asked():
    assert ops.restore_command_args("file:/s/sp", False, ["--raw-topic", "r"]) == ["-s", "file:/s/sp", "--raw-topic", "r"]
    assert "--allowNonRestoredState" not in ops.restore_command_args("file:/s/sp", False, [])
    assert ops.restore_command_args("file:/s/sp", True, ["--x"]) == ["-s", "file:/s/sp", "--allowNonRestoredState", "--x"]


def test_job_targets_map_to_the_scripts_vigil_submit_runs():
    from vigil.cli import JOBS
    assert {ops.job_target(name)[1] for name in ops.SUBMIT_JOB} <= set(JOBS)
    assert ops.job_target("analytics") == ("vigil-analytics", "analytics")


def test_cluster_down_is_exit_3(monkeypatch, capsys):
    from vigil import cli
    monkeypatch.setenv("VIGIL_FLINK_REST_PORT", "1")   # nothing listens there
    monkeypatch.setattr(ops.flink_cluster, "ClusterSettings", lambda: type("S", (), {"rest_url": "http://127.0.0.1:1"})())
    monkeypatch.setattr(ops.flink_cluster, "rest", lambda *a, **k: (_ for _ in ()).throw(ConnectionRefusedError(111, "refused")))
    assert cli.main(["jobs"]) == 3
    assert "does not answer" in capsys.readouterr().err
    assert cli.main(["savepoint", "vigil-ingest"]) == 3


def test_stop_needs_savepoint_flag_and_restore_needs_one_source(capsys):
    from vigil import cli
    assert cli.main(["stop", "vigil-ingest"]) == 1
    assert "--savepoint" in capsys.readouterr().err
    assert cli.main(["restore", "ingest"]) == 1
    assert cli.main(["restore", "ingest", "--latest", "--from", "/x"]) == 1
