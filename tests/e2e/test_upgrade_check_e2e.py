"""Upgrade safety on a real cluster: a savepoint of the running ingest job, then `vigil upgrade
check` against the code as checked out (every state maps: exit 0, the de-duplication and source
state listed as restored), against a changed plan (other operator uids, as a change to the job's
SQL or uid format gives: exit 5, the dropped operators named by id, uid and size), and `vigil
restore` with that changed plan refusing with the same report, no job submitted."""

from __future__ import annotations

import pytest

from tests.ingest_checks import ingest_args, produce_with_manifest, read_outcomes
from vigil import cli, flink_cluster, savepoint_ops
from vigil.paths import PROJECT_ROOT

START = "partition:0,offset:0;partition:1,offset:0;partition:2,offset:0;partition:3,offset:0"
# The same job with another uid format: every operator id changes, as after a SQL change.
CHANGED_PLAN = ["--flink-conf", "table.exec.uid.format=vigil-ingest.v2.<id>_<transformation>"]


def _vigil(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    with capsys.disabled():   # shown with -s
        print(f"$ vigil {' '.join(argv)} -> exit {code}\n{out.out}{out.err}")
    return code, out.out, out.err


# Three PyFlink plan exports (40-90 s each): in `make drills`, beside the other long runs.
pytestmark = pytest.mark.long


def test_upgrade_check_maps_the_same_plan_and_names_state_a_changed_plan_drops(flink, kafka, ingest_topics,
                                                                               tmp_path, capsys):
    args = ingest_args(ingest_topics, "--checkpoint-interval-ms", "1000", "--start-offsets", START)
    job_id = flink_cluster.submit_python_job(PROJECT_ROOT / "jobs" / "ingest.py", args)
    taken = None
    try:
        flink_cluster.wait_for_checkpoints(job_id, 0, timeout_s=120)
        sent = produce_with_manifest(kafka, ingest_topics["raw"], 200, tmp_path, seed=21)
        read_outcomes(kafka, ingest_topics, len(sent), max_wait_s=90)   # the de-duplication state holds them
        code, out, _ = _vigil(capsys, "savepoint", job_id)
        assert code == 0
        taken = out.strip().splitlines()[-1]
        flink_cluster.cancel(job_id)

        code, out, _ = _vigil(capsys, "upgrade", "check", "ingest", "--from", taken, *args)
        assert code == 0
        assert "uid vigil-ingest.6_over-aggregate" in out and "keyed state" in out   # the de-duplication
        assert "uid vigil-ingest.1_source" in out and "compatible: every state" in out

        code, out, _ = _vigil(capsys, "upgrade", "check", "ingest", "--from", taken, *args, *CHANGED_PLAN)
        assert code == 5
        dropped = out.split("STATE WOULD BE DROPPED", 1)[1].split("restored (", 1)[0]
        assert "OverAggregate[6]  uid vigil-ingest.6_over-aggregate" in dropped
        assert "probably now" in dropped and "uid vigil-ingest.v2.6_over-aggregate" in dropped
        assert "NOT compatible" in out

        jobs_before = {j.job_id for j in savepoint_ops.parse_overview(flink_cluster.rest("/jobs/overview"))}
        code, _, err = _vigil(capsys, "restore", "ingest", "--from", taken, *args, *CHANGED_PLAN)
        assert code == 5 and "refused" in err and "uid vigil-ingest.6_over-aggregate" in err
        assert {j.job_id for j in savepoint_ops.parse_overview(flink_cluster.rest("/jobs/overview"))} == jobs_before
    finally:
        if flink_cluster.job(job_id)["state"] not in savepoint_ops.TERMINAL:
            flink_cluster.cancel(job_id)
        entries = savepoint_ops.load_catalog()
        for entry in entries:
            if entry.path == taken:
                savepoint_ops.delete_savepoint(entry)
        savepoint_ops.save_catalog([e for e in entries if e.path != taken])
