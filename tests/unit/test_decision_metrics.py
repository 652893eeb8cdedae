"""The fraud job's decision metrics (udfs/decision_metrics.py), no JVM: which latency buckets a
decision counts in, the bounded pattern labels, and that the risk scorer counts each decision once,
under the names the Prometheus rules read (the fast path counts in Java:
tests/unit/test_fraud_java_counters.py)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.decision_metrics import (LATENCY_BOUNDS_MS, LATENCY_LABELS, MODEL_CODES, OTHER_PATTERN, PATTERN_CODES,
                                   SQL_PATTERNS, AlertPatterns, DecisionLatency, first_bucket, pattern_label)
from udfs.fraud_models import ModelConfig
from udfs.fraud_scorer_operator import RiskScorer
from udfs.fraud_scoring import OUTPUT_FIELDS
# Flink's contexts and metric groups as the per-record guard tests stand them in.
from tests.unit.test_per_record_guards import Context, Item, MetricGroup, RuntimeContext

ROOT = Path(__file__).resolve().parents[2]
LATENCY = "vigil_decision_latency_ms_bucket"


def counts(metrics: MetricGroup, name: str) -> dict[tuple, int]:
    """{labels (key, value, ...): count} of one metric."""
    return {path[:-1]: c.count for path, c in metrics.registry.items() if path[-1] == name}


def buckets(metrics: MetricGroup, path: str) -> dict[str, int]:
    """{le_ms: count} of one path's latency counters."""
    return {labels[3]: n for labels, n in counts(metrics, LATENCY).items() if labels[1] == path}


def counted_in(latency_ms: int) -> set[str]:
    """The buckets a decision must count in, by the definition: every bound at or above it, and inf."""
    return {str(b) for b in LATENCY_BOUNDS_MS if b >= latency_ms} | {"inf"}


# --- pure logic ---------------------------------------------------------------------------------

def test_the_buckets_are_the_ones_the_rules_read():
    assert LATENCY_LABELS == ("50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000", "inf")
    slo = (ROOT / "ops/prometheus/rules/slo.yml").read_text()
    assert set(re.findall(r'le_ms="(\w+)"', slo)) == {"500", "10000", "inf"}  # the SLO's bounds are buckets
    assert set(re.findall(r'path="(\w+)"', slo)) == {"fast", "exact"}


def test_a_latency_on_a_bound_counts_in_that_bucket():
    assert LATENCY_LABELS[first_bucket(500):] == ("500", "1000", "2500", "5000", "10000", "30000", "60000", "inf")
    assert LATENCY_LABELS[first_bucket(501):][0] == "1000"
    assert LATENCY_LABELS[first_bucket(0):] == LATENCY_LABELS
    assert LATENCY_LABELS[first_bucket(-20):] == LATENCY_LABELS  # clocks apart: fastest bucket
    assert LATENCY_LABELS[first_bucket(60_001):] == ("inf",)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(latency=st.integers(min_value=-10**6, max_value=10**9) | st.sampled_from(LATENCY_BOUNDS_MS))
def test_first_bucket_agrees_with_the_cumulative_definition(latency):
    assert set(LATENCY_LABELS[first_bucket(latency):]) == counted_in(latency)


def test_pattern_labels_are_bounded():
    assert [pattern_label(c) for c in ("card_testing", "velocity", "model_supervised")] == \
        ["card_testing", "velocity", "model_supervised"]
    assert {pattern_label(c) for c in ("internal_error", "Card_Testing", "", None, "x" * 300)} == {OTHER_PATTERN}


def test_the_known_codes_are_the_sql_patterns_and_the_model_codes():
    sql = " ".join(p.read_text() for p in (ROOT / "sql/queries").glob("fraud_*.sql"))
    assert set(re.findall(r"'(\w+)' AS fraud_pattern", sql)) == set(SQL_PATTERNS)
    models = (ROOT / "udfs/fraud_models.py").read_text()
    assert set(re.findall(r'"(model_\w+)"', models)) == set(MODEL_CODES)
    assert OTHER_PATTERN not in PATTERN_CODES


# --- counters (duck-typed metric groups) ---------------------------------------------------------

def test_latency_counters_are_registered_up_front_under_the_rules_names():
    metrics = MetricGroup()
    latency = DecisionLatency(metrics, "fast")
    assert sorted(counts(metrics, LATENCY)) == sorted(("path", "fast", "le_ms", label) for label in LATENCY_LABELS)
    for ms in (30, 499, 500, 7000, 10**6, None):
        latency.observe(ms)
    assert buckets(metrics, "fast") == {"50": 1, "100": 1, "250": 1, "500": 3, "1000": 3, "2500": 3, "5000": 3,
                                       "10000": 4, "30000": 4, "60000": 4, "inf": 5}


def test_alert_patterns_count_each_reason_code_once_and_fold_unknown_ones():
    metrics = MetricGroup()
    patterns = AlertPatterns(metrics)
    assert {labels[1] for labels in counts(metrics, "vigil_fraud_alerts")} == set(PATTERN_CODES) | {"other"}
    patterns.count(["card_testing", "model_anomaly"])
    patterns.count(["card_testing", "brand_new", "also_new"])
    patterns.count([])
    alerts = {labels[1]: n for labels, n in counts(metrics, "vigil_fraud_alerts").items() if n}
    assert alerts == {"card_testing": 2, "model_anomaly": 1, "other": 2}


def test_without_a_metric_group_nothing_is_counted_and_nothing_fails():
    DecisionLatency(None, "exact").observe(10)
    AlertPatterns(None).count(["velocity"])


# --- the adapters --------------------------------------------------------------------------------

def item(kind: str, event_id: str, appended_ms: int | None, **fields) -> Item:
    values = dict(kind=kind, tenant_id="t1", event_id=event_id, event_ms=10, appended_ms=appended_ms,
                  entity_type="user", entity_id="u1", fraud_pattern=None, score=None, detail="{}", rules_ms=None,
                  is_fraud=None, label_ms=None)
    values.update(fields)
    return Item(values)


def test_the_risk_scorer_counts_one_latency_per_decided_event_and_each_alert_by_its_patterns():
    scorer = RiskScorer(ModelConfig(snapshot_dir=None), label_horizon_ms=1000)
    runtime = RuntimeContext()
    scorer.open(runtime)
    now_ms = 1_000_000_000
    scorer.decider.clock = lambda: now_ms / 1000  # decided at now_ms
    # At event time 10, ahead of the watermark: queued, then decided together when the timer fires.
    # e1: a payment with two pattern hits (a score and an alert: one decision, ~20 s after its
    # append); e2: a hit alone (an alert, ~0.7 s); e3: a payment whose append time is unknown.
    items = [item("payment", "e1", now_ms - 20_000, detail='{"payments_1h": 2, "device_id": "d1"}'),
             item("hit", "e1", now_ms - 20_000, fraud_pattern="velocity", score=0.7),
             item("hit", "e1", now_ms - 20_000, fraud_pattern="card_testing", score=0.9),
             item("hit", "e2", now_ms - 700, fraud_pattern="not_listed_yet", score=0.8),
             item("payment", "e3", None, detail='{"payments_1h": 1}')]
    for i in items:
        assert list(scorer.process_element(i, Context("t1", watermark=0))) == []
    rows = list(scorer.on_timer(10, Context("t1", watermark=10)))
    field = OUTPUT_FIELDS.index
    assert sorted((row[field("event_id")], row[0]) for row in rows) == \
        [("e1", "alert"), ("e1", "score"), ("e2", "alert"), ("e3", "score")]
    latency = {row[field("event_id")]: row[field("detection_latency_ms")] for row in rows}
    assert latency == {"e1": 20_000, "e2": 700, "e3": None}
    exact = buckets(runtime.metrics, "exact")
    assert exact["inf"] == 2  # e1 once (not once per record), e2; e3 has no latency
    assert exact == {label: (label in counted_in(latency["e1"])) + (label in counted_in(latency["e2"]))
                     for label in LATENCY_LABELS}
    assert buckets(runtime.metrics, "fast") == {}
    patterns = {labels[1]: n for labels, n in counts(runtime.metrics, "vigil_fraud_alerts").items() if n}
    assert patterns == {"card_testing": 1, "velocity": 1, "other": 1}
