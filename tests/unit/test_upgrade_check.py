"""The upgrade check's logic without a JVM: a savepoint's operator states (as SavepointStates
prints them) against a new job's operators (as the plan-export executor writes them), the report,
the exit codes, and `vigil restore` refusing a restore that would drop state."""

from __future__ import annotations

import pytest

from vigil import cli, savepoint_ops
from vigil import upgrade_check as uc

# Ids and uids as vigil-ingest's plan has them (trimmed to its stateful operators and one Calc).
SOURCE, DEDUP, CALC, WRITER, COMMITTER = "dd574a04", "46307170", "61706f58", "fe7205e2", "2e1a427e"


def saved(op_id, name, uid, size=0, keyed=False, operator=False):
    return {"id": op_id, "name": name, "uid": uid, "parallelism": 1, "max_parallelism": 128, "state_size": size,
            "subtasks_with_state": int(bool(size)), "keyed": keyed, "operator_state": operator,
            "coordinator_state": False, "channel_state": False, "finished": False, "has_state": bool(size)}


def new(op_id, name, uid, keyed=False, factory="org.apache.flink.table.runtime.operators.CodeGenOperatorFactory"):
    return {"generated_id": op_id, "user_defined_id": None, "name": name, "uid": uid, "keyed": keyed,
            "factory": factory}


SAVEPOINT = {"checkpoint_id": 3, "operators": [
    saved(SOURCE, "Source: raw_events[1]", "vigil-ingest.1_source", 1_200, operator=True),
    saved(DEDUP, "OverAggregate[6]", "vigil-ingest.6_over-aggregate", 2_500_000, keyed=True),
    saved(CALC, "Calc[7]", "vigil-ingest.7_calc"),
    saved(WRITER, "clean_events[8]: Writer", "vigil-ingest.8_sink", 300, operator=True),
    saved(COMMITTER, "clean_events[8]: Committer", "Sink Committer: vigil-ingest.8_sink", 0)]}


def plan(*operators) -> dict:
    return {"job_name": "vigil-ingest", "vertices": [{"id": "v", "name": "chain", "operators": list(operators)}]}


SAME_PLAN = plan(new(SOURCE, "Source: raw_events[1]", "vigil-ingest.1_source",
                     factory="org.apache.flink.streaming.api.operators.SourceOperatorFactory"),
                 new(DEDUP, "OverAggregate[6]", "vigil-ingest.6_over-aggregate", keyed=True),
                 new(CALC, "Calc[7]", "vigil-ingest.7_calc"),
                 new(WRITER, "clean_events[8]: Writer", "vigil-ingest.8_sink",
                     factory="org.apache.flink.streaming.runtime.operators.sink.SinkWriterOperatorFactory"),
                 new(COMMITTER, "clean_events[8]: Committer", "Sink Committer: vigil-ingest.8_sink",
                     factory="org.apache.flink.streaming.runtime.operators.sink.CommitterOperatorFactory"))


def report_for(plan_answer: dict) -> uc.Report:
    return uc.compare(uc.parse_savepoint(SAVEPOINT), uc.parse_plan(plan_answer), "file:/sp/savepoint-1", "vigil-ingest")


def test_same_plan_is_compatible_and_lists_the_restored_state():
    report = report_for(SAME_PLAN)
    assert report.compatible and uc.exit_code(report) == 0
    assert {s.id for s, _ in report.mapped} == {SOURCE, DEDUP, CALC, WRITER, COMMITTER}
    assert report.dropped == [] and report.new_stateful == []
    text = uc.render(report)
    assert "restored (3 with state, 2 stateless)" in text
    assert f"{DEDUP}  OverAggregate[6]  uid vigil-ingest.6_over-aggregate  2.5 MB keyed state" in text
    assert text.endswith("compatible: every state in the savepoint maps to an operator of the new job")


def test_a_changed_dedup_operator_drops_its_state_named_with_its_likely_successor():
    changed = plan(*[op for op in SAME_PLAN["vertices"][0]["operators"] if op["generated_id"] != DEDUP],
                   new("9f00aa11", "OverAggregate[9]", "vigil-ingest.9_over-aggregate", keyed=True))
    report = report_for(changed)
    assert not report.compatible and uc.exit_code(report) == uc.STATE_DROPPED == 5
    assert [s.id for s in report.dropped] == [DEDUP]
    assert [op.generated_id for op in report.new_stateful] == ["9f00aa11"]
    assert report.hints[DEDUP].uid == "vigil-ingest.9_over-aggregate"
    text = uc.render(report)
    assert "STATE WOULD BE DROPPED (1 operator(s)" in text
    assert f"  {DEDUP}  OverAggregate[6]  uid vigil-ingest.6_over-aggregate  2.5 MB keyed state, parallelism 1" in text
    assert "probably now 9f00aa11  OverAggregate[9]  uid vigil-ingest.9_over-aggregate (its uid changed)" in text
    assert "new stateful operators, starting EMPTY (1):\n  9f00aa11  OverAggregate[9]" in text
    assert "NOT compatible: restoring drops 2.5 MB of state" in text


def test_empty_state_of_a_removed_operator_is_no_loss():
    without_calc = plan(*[op for op in SAME_PLAN["vertices"][0]["operators"] if op["generated_id"] != CALC])
    report = report_for(without_calc)
    assert report.compatible and [s.id for s in report.empty_unmatched] == [CALC]
    assert "1 stateless operator(s) of the savepoint are gone: nothing lost" in uc.render(report)


def test_a_user_defined_id_maps_state_like_the_generated_one():
    # Flink matches savepoint state to either id of an OperatorIDPair (setUidHash).
    ops = [dict(op) for op in SAME_PLAN["vertices"][0]["operators"]]
    ops[1] = {**ops[1], "generated_id": "77777777", "user_defined_id": DEDUP}
    assert report_for(plan(*ops)).compatible


def test_new_stateless_operators_are_not_reported_as_starting_empty():
    report = report_for(plan(*SAME_PLAN["vertices"][0]["operators"], new("5555", "Calc[12]", "vigil-ingest.12_calc")))
    assert report.compatible and report.new_stateful == []


def test_json_report_carries_the_same_verdict():
    changed = plan(*[op for op in SAME_PLAN["vertices"][0]["operators"] if op["generated_id"] != WRITER])
    answer = uc.as_json(report_for(changed))
    assert answer["compatible"] is False
    assert [(d["id"], d["uid"], d["state_size"]) for d in answer["dropped"]] == [(WRITER, "vigil-ingest.8_sink", 300)]


# --- the commands, with the JVM parts replaced --------------------------------------------------

@pytest.fixture
def savepoint(tmp_path, monkeypatch):
    folder = tmp_path / "savepoint-1"
    folder.mkdir()
    (folder / "_metadata").write_bytes(b"x")
    monkeypatch.setattr(savepoint_ops, "catalog_file", lambda: tmp_path / "catalog.json")
    monkeypatch.setattr(uc, "savepoint_states", lambda _folder: uc.parse_savepoint(SAVEPOINT))
    return folder


def fake_plan(monkeypatch, answer: dict, seen: list):
    def job_plan(script, flags):
        seen.append((script.name, flags))
        return answer["job_name"], uc.parse_plan(answer)
    monkeypatch.setattr(uc, "job_plan", job_plan)


def test_upgrade_check_command_exit_codes_and_job_flags(savepoint, monkeypatch, capsys):
    seen: list = []
    fake_plan(monkeypatch, SAME_PLAN, seen)
    assert cli.main(["upgrade", "check", "ingest", "--from", str(savepoint), "--raw-topic", "r"]) == 0
    assert seen == [("ingest.py", ["--raw-topic", "r"])]
    assert "compatible: every state" in capsys.readouterr().out

    fake_plan(monkeypatch, plan(*SAME_PLAN["vertices"][0]["operators"][1:]), seen)
    assert cli.main(["upgrade", "check", "ingest", "--from", str(savepoint)]) == 5
    assert f"{SOURCE}  Source: raw_events[1]  uid vigil-ingest.1_source" in capsys.readouterr().out

    assert cli.main(["upgrade", "check", "ingest", "--from", str(savepoint.parent / "nope")]) == 2
    assert cli.main(["upgrade", "check", "ingest", "--latest"]) == 2          # nothing catalogued
    assert cli.main(["upgrade", "check", "ingest"]) == 1                      # --from or --latest


def test_restore_refuses_with_the_report_unless_dropped_state_is_allowed(savepoint, monkeypatch, capsys):
    fake_plan(monkeypatch, plan(*SAME_PLAN["vertices"][0]["operators"][1:]), [])
    submitted: list = []
    monkeypatch.setattr(savepoint_ops, "_rest", lambda *a, **k: {})
    monkeypatch.setattr(savepoint_ops.flink_cluster, "submit_python_job",
                        lambda script, args, **kwargs: submitted.append(args) or "f" * 32)
    monkeypatch.setattr(savepoint_ops, "_record_submission", lambda *a: None)

    assert cli.main(["restore", "ingest", "--from", str(savepoint)]) == 5
    err = capsys.readouterr().err
    assert "restore of vigil-ingest refused" in err and "STATE WOULD BE DROPPED" in err and SOURCE in err
    assert submitted == []

    assert cli.main(["restore", "ingest", "--from", str(savepoint), "--allow-dropped-state"]) == 0
    assert "--allow-dropped-state: this state is DROPPED" in capsys.readouterr().err
    assert submitted == [["-s", savepoint.resolve().as_uri(), "--allowNonRestoredState"]]
