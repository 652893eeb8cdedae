"""`vigil backtest` without Kafka or Flink: the fraud job's range flags, the command line checks,
the candidate's rules topic, and the comparison of two runs' alerts and incidents."""

from __future__ import annotations

import argparse
import json

import pytest

from jobs.fraud_config import FraudConfig
from jobs.fraud_sql import range_options_sql
from vigil import backtest, backtest_report, fraud_rules
from vigil.backtest_report import ALL, Truth, compare, hits_of
from vigil.instants import parse_duration, parse_instant

# ---- the fraud job's --start-time / --stop-time -------------------------------------------------------


def test_production_defaults_read_from_the_group_offsets_without_end():
    config = FraudConfig.from_args([])
    assert (config.start_time_ms, config.stop_time_ms, config.labels_start_time_ms, config.bounded) == (None, None, None, False)
    assert range_options_sql(config.bounded) == "'scan.startup.mode' = 'group-offsets',"


def test_a_recorded_range_is_read_by_record_timestamp_and_bounded():
    config = FraudConfig.from_args(["--start-time", "2026-12-03T10:00:00Z", "--stop-time", "1796295600000"])
    assert config.start_time_ms == 1_796_292_000_000 and config.stop_time_ms == 1_796_295_600_000
    assert config.bounded and config.flink.max_restarts == 3      # a stop time makes a bounded run
    options = range_options_sql(config.bounded, config.start_time_ms, config.stop_time_ms)
    assert "'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '1796292000000'," in options
    assert "'scan.bounded.mode' = 'timestamp', 'scan.bounded.timestamp-millis' = '1796295600000'," in options
    assert "latest-offset" not in options and "group-offsets" not in options


def test_a_start_time_alone_is_not_bounded_and_the_labels_may_start_earlier():
    config = FraudConfig.from_args(["--start-time", "1000", "--labels-start-time", "2026-12-03"])
    assert not config.bounded and config.labels_start_time_ms == parse_instant("2026-12-03T00:00:00Z")
    assert "scan.bounded" not in range_options_sql(config.bounded, config.start_time_ms, config.stop_time_ms)
    assert "'scan.bounded.mode' = 'latest-offset'," in range_options_sql(True, 1000)


def test_outputs_nothing_depends_on_can_be_skipped():
    assert FraudConfig.from_args([]).skip_outputs == ()
    config = FraudConfig.from_args(["--skip-output", "fraud_scores", "--skip-output", "features_online",
                                    "--skip-output", "fraud_scores"])
    assert config.skip_outputs == ("fraud_scores", "features_online")
    with pytest.raises(SystemExit):
        FraudConfig.from_args(["--skip-output", "fraud_alerts"])


@pytest.mark.parametrize("argv, message", [
    (["--start-time", "yesterday"], "neither epoch milliseconds nor an ISO 8601 time"),
    (["--start-time", "2000", "--stop-time", "1000"], "--stop-time (1000) must be after --start-time (2000)"),
])
def test_bad_range_flags_are_refused_with_their_text(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        FraudConfig.from_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_instants_and_durations():
    assert parse_instant("2026-12-03T11:00:00+01:00") == parse_instant("2026-12-03 10:00:00") == 1_796_292_000_000
    assert parse_duration("250ms") == 250 and parse_duration("1.5h") == 5_400_000 and parse_duration("10") == 10_000
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("six hours")


# ---- the command line ---------------------------------------------------------------------------------

def _args(tmp_path, *argv: str):
    parser = argparse.ArgumentParser()
    backtest.add_parser(parser.add_subparsers(), "127.0.0.1:9092", "http://127.0.0.1:8085")
    return parser.parse_args(["backtest", *argv])


def test_the_range_defaults_to_everything_up_to_now_and_from_may_count_back(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('{"*": {"card_testing_min_small": 6}}')
    plan = backtest.plan_of(_args(tmp_path, "--candidate-rules", str(rules)), now_ms=10_000_000)
    assert (plan.start_ms, plan.stop_ms, plan.replay_from_ms) == (None, 10_000_000, 0)
    assert plan.candidate_rules == {"*": {"card_testing_min_small": 6}}
    plan = backtest.plan_of(_args(tmp_path, "--candidate-rules", str(rules), "--from", "2h", "--to", "9000000",
                                  "--warmup", "30m"), now_ms=0)
    assert (plan.start_ms, plan.stop_ms, plan.replay_from_ms) == (9_000_000 - 7_200_000, 9_000_000, 0)


@pytest.mark.parametrize("content, argv, message", [
    (None, [], "nothing to compare"),
    ('{"*": {"card_testing_min_smal": 6}}', [], "unknown rule parameters: card_testing_min_smal"),
    ('{"t1": {"velocity_1m": -2}}', [], "tenant 't1': velocity_1m=-2 must be a positive number"),
    ('{"t 1": {"velocity_1m": 2}}', [], "is not a tenant id"),
    ('[1, 2]', [], 'expected {"tenant or *"'),
    ("{not json", [], "--candidate-rules"),
    ('{"*": {"velocity_1m": 8}}', ["--from", "2026-12-03", "--to", "2026-12-02"], "must be before --to"),
    ('{"*": {"velocity_1m": 8}}', ["--from", "last tuesday"], "neither epoch milliseconds nor an ISO 8601"),
    (None, ["--candidate-model", "hst-v9"], "unknown model version; known: hst-v1"),
    (None, ["--candidate-model", "hst-v1"], "the candidate models are the current ones"),
    ('{"*": {"velocity_1m": 8}}', ["--scenario-labels", "/no/such/labels.jsonl"], "--scenario-labels"),
])
def test_bad_arguments_are_named(tmp_path, content, argv, message):
    extra = []
    if content is not None:
        (tmp_path / "rules.json").write_text(content)
        extra = ["--candidate-rules", str(tmp_path / "rules.json")]
    with pytest.raises(backtest.BadArguments, match=None) as error:
        backtest.plan_of(_args(tmp_path, *extra, *argv), now_ms=10_000_000)
    assert message in str(error.value)


def test_exit_code_2_for_bad_arguments(tmp_path, capsys):
    assert backtest.main(_args(tmp_path)) == 2
    assert "vigil backtest: nothing to compare" in capsys.readouterr().err


def test_a_candidate_model_replaces_its_role_only(tmp_path):
    plan = backtest.plan_of(_args(tmp_path, "--candidate-model", "hst-v2"), now_ms=10_000_000)
    assert plan.candidate_models == {"anomaly": "hst-v2"}
    assert plan.current_models == {"anomaly": "hst-v1", "supervised": "logreg-v1"}
    command = backtest.job_command({"clean": "c", "rules": "r", "chargebacks": "cb", "alerts": "a", "incidents": "i",
                                    "scores": "s", "features": "f", "decisions": "d", "dlq": "q", "prefix": "p"},
                                   "b", "u", 1, 2, 0, "/tmp/m", {**plan.current_models, **plan.candidate_models}, [])
    assert command[command.index("--anomaly-model") + 1] == "hst-v2"
    assert command[command.index("--stop-time") + 1] == "2" and command[command.index("--paths") + 1] == "exact"
    assert FraudConfig.from_args(command[3:]).skip_outputs == ("fraud_scores", "features_online")


# ---- the rules of each run --------------------------------------------------------------------------

def _record(tenant: str, overrides: dict, effective_ms: int) -> tuple[bytes, bytes]:
    return (json.dumps({"tenant_id": tenant}).encode(),
            json.dumps(fraud_rules.rule_message(tenant, overrides, effective_ms)).encode())


def _rows(records) -> list[tuple]:
    return [(json.loads(v)["tenant_id"], json.loads(v)["effective_from"], json.loads(v)["card_testing_min_small"],
             json.loads(v)["velocity_1m"]) for _, v in records]


def test_the_current_run_gets_a_copy_in_effective_time_order_refused_records_last():
    star = _record("*", {"card_testing_min_small": 4, "velocity_1m": 10}, 5000)
    late_t1 = _record("t1", {"velocity_1m": 15}, 9000)
    early_t1 = _record("t1", {"velocity_1m": 12}, 7000)
    junk = (b'{"tenant_id": "t1"}', b"{not json")
    copies = backtest.rule_copies([star, late_t1, junk, early_t1], None, 20_000)
    assert copies == [star, early_t1, late_t1, junk]


def test_the_candidate_overrides_every_version_of_a_named_tenant_and_hold_from_before_the_range():
    star = _record("*", {"card_testing_min_small": 4, "velocity_1m": 10}, 50_000)
    t1 = _record("t1", {"velocity_1m": 15}, 60_000)
    t1_later = _record("t1", {"velocity_1m": 16}, 80_000)
    copies = backtest.rule_copies([star, t1, t1_later], {"t1": {"card_testing_min_small": 6}, "t9": {"velocity_1m": 3}},
                                  replay_from_ms=70_000)
    by_time = sorted(_rows(copies), key=lambda r: r[1])
    assert by_time == [("*", "1970-01-01 00:00:50.000", 4, 10), ("t1", "1970-01-01 00:00:59.000", 6, None),
                       ("t1", "1970-01-01 00:01:00.000", 6, 15), ("t9", "1970-01-01 00:01:09.000", None, 3),
                       ("t1", "1970-01-01 00:01:20.000", 6, 16)]
    assert _rows(copies) == by_time                        # written in effective-time order
    for key, value in copies:                              # all of them accepted by the job
        assert fraud_rules.parse_rule_message(key, value).reason is None


# ---- the comparison -----------------------------------------------------------------------------------

def alert(event_id: str, at_ms: int, *hits: tuple[str, str, str], tenant: str = "t1", codes=(), latency=100) -> dict:
    patterns = [{"pattern": p, "entity_type": t, "entity_id": i} for p, t, i in hits]
    return {"alert_id": f"a-{event_id}", "tenant_id": tenant, "event_id": event_id, "event_time": at_ms,
            "detection_latency_ms": latency, "entity_type": hits[0][1] if hits else "user",
            "entity_id": hits[0][2] if hits else "u-model", "reason_codes": [p for p, _, _ in hits] + list(codes),
            "evidence": json.dumps({"patterns": patterns})}


def incident(incident_id: str, alerts: list[str], patterns: list[str]) -> dict:
    return {"incident_id": incident_id, "alert_ids": alerts, "patterns": patterns}


def test_hits_are_diffed_by_event_pattern_and_entity_and_incidents_by_id():
    current = [alert("e1", 1000, ("card_testing", "card", "c1")),
               alert("e2", 2000, ("velocity", "card", "c2"), ("velocity", "user", "u2")),
               alert("e3", 3000, ("impossible_travel", "user", "u3"))]
    candidate = [alert("e2", 2000, ("velocity", "card", "c2")),
                 alert("e3", 3000, ("impossible_travel", "user", "u3")),
                 alert("e4", 4000, ("velocity", "card", "c4"))]
    report = compare(current, candidate,
                     [incident("i1", ["a-e1"], ["card_testing"]), incident("i2", ["a-e2"], ["velocity"]),
                      incident("i3", ["a-e3"], ["impossible_travel"])],
                     [incident("i2", ["a-e2"], ["velocity"]), incident("i3", ["a-e3"], ["impossible_travel"]),
                      incident("i4", ["a-e4"], ["velocity"])])
    rows = report["patterns"]
    assert (rows["card_testing"]["removed"], rows["card_testing"]["added"], rows["card_testing"]["incidents_removed"]) == (1, 0, 1)
    velocity = rows["velocity"]
    assert (velocity["current"]["hits"], velocity["candidate"]["hits"], velocity["added"], velocity["removed"]) == (2, 2, 1, 1)
    assert (velocity["incidents_added"], velocity["incidents_removed"], velocity["incidents_changed"]) == (1, 0, 0)
    travel = rows["impossible_travel"]
    assert (travel["added"], travel["removed"], travel["incidents_changed"]) == (0, 0, 0)
    everything = rows[ALL]
    assert (everything["current"]["hits"], everything["candidate"]["hits"]) == (3, 3)   # alerts, by event
    assert (everything["added"], everything["removed"]) == (1, 1)
    assert {h["event_id"] for h in report["removed_hits"]} == {"e1", "e2"}
    assert backtest_report.changed(report)
    assert not backtest_report.changed(compare(current, current, [], []))


def test_an_incident_whose_alerts_or_patterns_differ_is_changed():
    before = [incident("i1", ["a-e1", "a-e2"], ["card_testing", "velocity"])]
    after = [incident("i1", ["a-e1"], ["card_testing"])]
    rows = compare([], [], before, after)["patterns"]
    assert rows[ALL]["incidents_changed"] == 1 and rows["card_testing"]["incidents_changed"] == 1
    assert rows["velocity"]["incidents_removed"] == 1


def test_model_reason_codes_are_hits_on_the_payment_whatever_the_alert_names():
    hits = hits_of([alert("e9", 5000, codes=["model_anomaly", "model_supervised"])])
    assert [(h.pattern, h.entity_type, h.entity_id) for h in hits] == [
        ("model_anomaly", "payment", "e9"), ("model_supervised", "payment", "e9")]
    # the same model hit beside a pattern the candidate no longer raises is not a change of its own
    report = compare([alert("e9", 5000, ("velocity", "ip", "1.2.3.4"), codes=["model_supervised"])],
                     [alert("e9", 5000, codes=["model_supervised"])], [], [])
    assert report["patterns"]["model_supervised"]["added"] == report["patterns"]["model_supervised"]["removed"] == 0


def test_a_hit_alerted_at_another_event_of_the_same_burst_has_moved():
    current = [alert("e10", 100_000, ("velocity", "card", "c1")), alert("e50", 9_000_000, ("velocity", "card", "c2"))]
    candidate = [alert("e8", 90_000, ("velocity", "card", "c1"))]
    row = compare(current, candidate, [], [])["patterns"]["velocity"]
    assert (row["added"], row["removed"], row["moved"]) == (1, 2, 1)


def test_an_incident_counts_for_the_patterns_of_its_alerts():
    alerts = [alert("e1", 1, codes=["model_supervised"]), alert("e2", 2, ("card_testing", "card", "c"))]
    rows = compare(alerts, alerts, [incident("i1", ["a-e1"], ["model"]), incident("i2", ["a-e2", "a-e1"], ["card_testing"])],
                   [incident("i1", ["a-e1"], ["model"]), incident("i2", ["a-e2", "a-e1"], ["card_testing"])])["patterns"]
    assert "model" not in rows
    assert rows["model_supervised"]["current"]["incidents"] == 2 and rows["card_testing"]["current"]["incidents"] == 1


def scenario_truth() -> Truth:
    labels = ([{"event_id": f"ct{i}", "scenario": "card_testing", "instance": "ct-A", "event_time": 1000 + i} for i in range(3)]
              + [{"event_id": f"cu{i}", "scenario": "card_testing", "instance": "ct-B", "event_time": 5000 + i} for i in range(3)]
              + [{"event_id": "cut0", "scenario": "card_testing", "instance": "ct-cut", "event_time": 9000}]
              + [{"event_id": "ato0", "scenario": "account_takeover", "instance": "ato-A", "event_time": 2000}])
    return Truth.from_labels(labels, lambda event_id, _ms: event_id != "cut0")   # ct-cut ran past the range


def test_precision_recall_and_latency_against_scenario_labels():
    truth = scenario_truth()
    current = [alert("ct2", 1900, ("card_testing", "card", "cA")),                   # right, 900 ms after its start
               alert("ato0", 2500, ("card_testing", "card", "cX")),                  # wrong scenario
               alert("n1", 3000, ("card_testing", "card", "cN")),                    # ordinary traffic
               alert("cut0", 9100, ("card_testing", "card", "cC"))]                  # an incomplete instance
    candidate = current[:1] + [alert("cu2", 5500, ("card_testing", "card", "cB"))]
    rows = compare(current, candidate, [], [], truth)["patterns"]
    cur, cand = rows["card_testing"]["current"], rows["card_testing"]["candidate"]
    assert cur["precision_scenarios"] == 2 / 4 and cur["recall_scenarios"] == 1 / 2
    assert (cur["instances_caught"], cur["instances"]) == (1, 2)
    assert cand["precision_scenarios"] == 1.0 and cand["recall_scenarios"] == 1.0
    assert cur["latency_p50_ms"] == 900 and cand["latency_p99_ms"] == 900     # ct-A 900 ms, ct-B 500 ms
    assert "scenario" in cur["latency_basis"]
    everything = rows[ALL]["current"]                  # any scenario counts for the summary row
    assert everything["precision_scenarios"] == 3 / 4 and everything["recall_scenarios"] == 2 / 3


def test_without_labels_the_latency_is_the_alerts_own():
    rows = compare([alert("e1", 1, ("velocity", "card", "c"), latency=40), alert("e2", 2, ("velocity", "card", "d"), latency=90)],
                   [], [], [])["patterns"]
    assert rows["velocity"]["current"]["latency_p50_ms"] == 90 and rows["velocity"]["candidate"]["latency_p50_ms"] is None
    assert "precision_scenarios" not in rows["velocity"]["current"]


def test_precision_and_recall_against_chargebacks_by_user_or_card():
    truth = Truth()
    truth.charged_back = {"p1": ("t1", "u1", "c1"), "p2": ("t1", "u2", "c2")}
    truth.fraud_entities = {("t1", "user", "u1"), ("t1", "card", "c1"), ("t1", "user", "u2"), ("t1", "card", "c2")}
    truth.event_entities = {"e1": ("t1", "u9", "c1"),      # another user paying with charged-back card c1
                            "e2": ("t1", "u7", None),
                            "e3": ("t2", "u2", None)}       # u2 of another tenant: not the same customer
    alerts = [alert("e1", 1, ("velocity", "device", "d1")), alert("e2", 2, ("velocity", "device", "d2")),
              alert("e3", 3, ("velocity", "device", "d3"), tenant="t2")]
    row = compare(alerts, [], [], [], truth)["patterns"]["velocity"]["current"]
    assert row["precision_chargebacks"] == 1 / 3 and row["recall_chargebacks"] == 1 / 2


def test_the_table_shows_changes_as_current_to_candidate():
    truth = scenario_truth()
    report = compare([alert("ct2", 1900, ("card_testing", "card", "cA"))], [], [incident("i1", ["a-ct2"], ["card_testing"])],
                     [], truth)
    text = backtest_report.table(report)
    assert "card_testing" in text and "1.000 -> -" in text and "0.500 -> 0.000" in text
    assert "first 1 removed hits:\n  card_testing card:cA tenant t1 event ct2" in text


def test_the_chart_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    report = compare([alert("ct2", 1900, ("card_testing", "card", "cA"))], [], [], [], scenario_truth())
    backtest_report.chart(report, tmp_path / "chart.png", title="test")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_warm_up_alerts_and_their_incidents_are_left_out():
    from datetime import datetime, timezone

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)   # as Avro reads back
    warm = {**alert("e1", 1, ("velocity", "card", "c")), "decided_at": at(10_000), "detection_latency_ms": 5_000}
    kept = {**alert("e2", 2, ("velocity", "card", "c")), "decided_at": at(30_000), "detection_latency_ms": 5_000}
    alerts, incidents = backtest.in_compared_range([warm, kept], [incident("i1", ["a-e1"], []),
                                                                  incident("i2", ["a-e1", "a-e2"], [])], 20_000)
    assert [a["event_id"] for a in alerts] == ["e2"] and [i["incident_id"] for i in incidents] == ["i2"]
    assert backtest.in_compared_range([warm], [], None) == ([warm], [])


def _run(tmp_path, name: str, code: str) -> backtest.Run:
    import sys
    return backtest.Run(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")


@pytest.mark.parametrize("at_once", [False, True])
def test_runs_go_one_after_the_other_or_at_once_and_a_failure_names_its_log(tmp_path, at_once):
    marks = tmp_path / "marks"
    ok = _run(tmp_path, "current", f"import time; open({str(marks)!r}, 'a').write('c'); time.sleep(0.3)")
    bad = _run(tmp_path, "candidate", f"import sys; open({str(marks)!r}, 'a').write('x'); "
                                      "print('job exploded'); sys.exit(3)")
    with pytest.raises(backtest.RunFailed) as error:
        backtest.run_jobs([ok, bad], at_once, timeout_s=60, log=lambda _: None)
    assert "the candidate run failed (exit 3)" in str(error.value) and "job exploded" in str(error.value)
    assert ok.returncode == 0 and sorted(marks.read_text()) == ["c", "x"]


def test_a_run_past_its_timeout_is_stopped_and_fails(tmp_path):
    slow = _run(tmp_path, "current", "import time; time.sleep(60)")
    with pytest.raises(backtest.RunFailed, match="timed out"):
        backtest.run_jobs([slow], False, timeout_s=1, log=lambda _: None)
    assert slow.process.poll() is not None
