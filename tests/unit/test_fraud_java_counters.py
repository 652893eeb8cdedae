"""The fraud job's metrics that Java functions count (java/vigil-formats: CountDecisionLatency,
CountRuleRefusal, CountInternalError), no JVM: the Java bounds and labels are the ones the rules
and udfs/decision_metrics.py use, each counting call sits once on the path its rows take, and
the Python scalar functions register no metric (in thread mode theirs are never reported).
tests/e2e/test_fraud_metrics_exported.py scrapes the real counters from a TaskManager."""

from __future__ import annotations

import re

from jobs import fraud_sql
from udfs.decision_metrics import LATENCY_BOUNDS_MS
from udfs.fraud_input_udfs import CheckRule
from udfs.fraud_models import ModelConfig
from udfs.fraud_scorer_operator import FastDecision
from vigil.paths import PROJECT_ROOT
from tests.unit.test_per_record_guards import opened

FUNCTIONS = PROJECT_ROOT / "java/vigil-formats/src/main/java/vigil/flink/functions"


def java_source(name: str) -> str:
    return (FUNCTIONS / f"{name}.java").read_text()


def test_the_java_latency_buckets_are_the_python_ones():
    bounds = re.search(r"long\[\] BOUNDS_MS = \{([^}]*)\}", java_source("CountDecisionLatency"))[1]
    assert tuple(int(b) for b in bounds.split(",")) == LATENCY_BOUNDS_MS


def test_the_java_rule_reasons_are_the_ones_the_rule_parser_gives():
    parser = (PROJECT_ROOT / "vigil/fraud_rules.py").read_text()
    known = set(re.findall(r'_refused\("(\w+)"', parser))
    assert known == {"json_parse_error", "invalid_rule"}
    assert set(re.findall(r'"(\w+)"', re.search(r"REASONS = Set.of\(([^)]*)\)",
                                                 java_source("CountRuleRefusal"))[1])) == known


def test_fast_decisions_are_counted_once_where_written_and_errors_where_dead_lettered():
    written = fraud_sql.fast_decisions_output_sql()
    assert written.count("count_decision_latency(") == 1 and "WHERE error IS NULL" in written
    assert "count_decision_latency('fast', decision_latency_ms) AS decision_latency_ms" in written
    dead = fraud_sql.fast_path_errors_sql("vigil-fraud")
    assert dead.count("count_internal_error('fast_decision')") == 1 and "WHERE error IS NOT NULL" in dead
    # the view both read does not count: a row is counted by the one output it goes to
    assert "count_" not in fraud_sql.fast_decisions_sql("river") + fraud_sql.fast_decisions_sql("jvm")


def test_refused_rules_are_counted_in_the_dead_letter_branch_alone():
    inputs = (PROJECT_ROOT / "sql/queries/fraud_inputs.sql").read_text()
    verdicts = (PROJECT_ROOT / "sql/queries/fraud_verdicts.sql").read_text()
    assert inputs.count("count_rule_refusal(") == 1 and "count_rule_refusal(" not in verdicts
    branch = next(part for part in inputs.split("UNION ALL") if "count_rule_refusal(" in part)
    assert "FROM rule_verdicts WHERE reason IS NOT NULL" in branch


def test_the_python_scalar_functions_register_no_metrics():
    check, metrics = opened(CheckRule())
    assert check.eval(b'{"tenant_id": "t1"}', b'{"velocity_1m": "lots"', True)[0] == "json_parse_error"
    assert check.eval(b"k", None, True)[0] == "invalid_rule"
    fast, fast_metrics = opened(FastDecision(ModelConfig(snapshot_dir=None)))
    assert fast.eval("t1", '{"payments_1h": 1}')[6] is None and fast.eval("t1", "not json")[6] is not None
    assert metrics.registry == {} and fast_metrics.registry == {}


def test_a_fast_path_error_row_has_an_empty_array_for_reason_codes():
    # A null array fails PyFlink's thread-mode converter: the job restarted on every scorer error.
    fast, _ = opened(FastDecision(ModelConfig(snapshot_dir=None)))
    row = fast.eval("t1", "not json")
    assert row[6].startswith("JSONDecodeError") and row[1] == []
