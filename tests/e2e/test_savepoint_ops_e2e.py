"""The SRE's savepoint commands on a real cluster: the ingest job runs on fresh topics; `vigil
savepoint` takes a savepoint while it runs, `vigil stop --savepoint` stops it with one, `vigil
savepoints` catalogues both, `vigil restore ingest --latest` starts it again from the stop's
savepoint (Flink reports the restore), and the records sent before the stop and after the
restore each leave the pipeline exactly once (the source offsets and the de-duplication state
came through the savepoint)."""

from __future__ import annotations

import json

from tests.ingest_checks import assert_each_input_exactly_once, ingest_args, produce_with_manifest, read_outcomes
from vigil import cli, flink_cluster, savepoint_ops
from vigil.paths import PROJECT_ROOT

START = "partition:0,offset:0;partition:1,offset:0;partition:2,offset:0;partition:3,offset:0"


def _vigil(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    with capsys.disabled():   # shown with -s, never mixed into the next command's output
        print(f"$ vigil {' '.join(argv)} -> exit {code}\n{out.out}{out.err}")
    return code, out.out, out.err


def test_savepoint_stop_catalog_and_restore_latest(flink, kafka, ingest_topics, tmp_path, capsys):
    args = ingest_args(ingest_topics, "--checkpoint-interval-ms", "1000", "--start-offsets", START)
    first = flink_cluster.submit_python_job(PROJECT_ROOT / "jobs" / "ingest.py", args)
    second = None
    ours: list[str] = []
    try:
        flink_cluster.wait_for_checkpoints(first, 0, timeout_s=120)
        before = produce_with_manifest(kafka, ingest_topics["raw"], 1000, tmp_path, seed=11, bad_fraction=0.05)
        read_outcomes(kafka, ingest_topics, len(before), max_wait_s=90)

        code, out, _ = _vigil(capsys, "savepoint", first)
        assert code == 0
        taken = out.strip().splitlines()[-1]
        code, out, err = _vigil(capsys, "stop", first, "--savepoint")
        assert code == 0, err
        stopped = out.strip().splitlines()[-1]
        ours += [taken, stopped]
        assert taken != stopped and all((savepoint_ops.local_path(p) / "_metadata").exists() for p in ours)
        assert flink_cluster.job(first)["state"] == "FINISHED"

        code, out, _ = _vigil(capsys, "savepoints", "--json")
        catalog = {row["path"]: row for row in json.loads(out)}
        assert {catalog[taken]["kind"], catalog[stopped]["kind"]} == {"savepoint", "stop-with-savepoint"}
        for path in ours:
            row = catalog[path]
            assert row["job_name"] == "vigil-ingest" and row["job_id"] == first and row["exists"]
            assert row["size_bytes"] > 0 and len(row["plan_fingerprint"]) == 16 and len(row["commit"] or "x" * 40) == 40
        assert catalog[taken]["plan_fingerprint"] == catalog[stopped]["plan_fingerprint"]

        # Records sent while the job is stopped are read by the restored job from the saved offsets.
        during = produce_with_manifest(kafka, ingest_topics["raw"], 500, tmp_path, seed=12, bad_fraction=0.05)
        code, out, err = _vigil(capsys, "restore", "ingest", "--latest", *args)
        assert code == 0, err
        second = out.strip().splitlines()[-1]
        flink_cluster.wait_for_checkpoints(second, 0, timeout_s=120)
        restored = flink_cluster.rest(f"/jobs/{second}/checkpoints")["latest"]["restored"]
        assert restored["is_savepoint"] and restored["external_path"] == stopped
        assert flink_cluster.checkpoint_counts(second)["restored"] >= 1

        code, out, _ = _vigil(capsys, "jobs", "--json")
        row = next(r for r in json.loads(out) if r["job_id"] == second)
        assert row["name"] == "vigil-ingest" and row["restored"]["path"] == stopped
        code, out, _ = _vigil(capsys, "savepoints", "--json")
        assert second in next(r for r in json.loads(out) if r["path"] == stopped)["restored_by"]
        # The restored job has the same plan: same vertex ids, as the savepoint's fingerprint says.
        assert savepoint_ops.plan_fingerprint(flink_cluster.rest(f"/jobs/{second}/plan")) == \
            catalog[stopped]["plan_fingerprint"]

        result = read_outcomes(kafka, ingest_topics, len(before) + len(during), max_wait_s=120)
        assert_each_input_exactly_once(before + during, result)
    finally:
        for job_id in (first, second):
            if job_id and flink_cluster.job(job_id)["state"] not in savepoint_ops.TERMINAL:
                try:
                    flink_cluster.cancel(job_id)
                except OSError as error:   # e.g. 409 while it finishes
                    print(f"cancel {job_id}: {error}")
        entries = savepoint_ops.load_catalog()
        for entry in entries:
            if entry.path in ours:
                savepoint_ops.delete_savepoint(entry)
        savepoint_ops.save_catalog([e for e in entries if e.path not in ours])
