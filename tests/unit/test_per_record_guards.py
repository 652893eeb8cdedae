"""Every Python function Flink calls per record returns a verdict for any input (no JVM).

The adapters are driven directly with stand-ins for Flink's contexts: arbitrary bytes and values
in, a row out, never an exception; a bug inside becomes an `internal_error` row plus a metric;
an infrastructure failure still propagates (the job must retry, not dead-letter a valid record).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil import fraud_rules
from udfs.fraud_input_udfs import CheckRule
from udfs.fraud_models import ModelConfig
from udfs.fraud_scorer_operator import FastDecision, RiskScorer, error_rows
from udfs.fraud_scoring import OUTPUT_FIELDS
from udfs.guard import InternalErrors
from udfs.ingest_udfs import ValidateEvent
from udfs.validation import REASONS, ValidationRules
from vigil.serde import CatalogUnavailable

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


class Counter:
    def __init__(self):
        self.count = 0

    def inc(self, n: int = 1):
        self.count += n


class MetricGroup:
    """Flink's metric group, recording counters by their full name."""

    def __init__(self, registry=None, path=()):
        self.registry = {} if registry is None else registry
        self.path = path

    def add_group(self, key, value=None):
        return MetricGroup(self.registry, self.path + (key, value))

    def counter(self, name):
        return self.registry.setdefault(self.path + (name,), Counter())

    def total(self, name: str) -> int:
        return sum(c.count for path, c in self.registry.items() if path[-1] == name)


class FunctionContext:
    def __init__(self):
        self.metrics = MetricGroup()

    def get_metric_group(self):
        return self.metrics


def opened(function):
    context = FunctionContext()
    function.open(context)
    return function, context.metrics


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=30), children, max_size=6),
                       max_leaves=20)
RULE_LIKE = st.fixed_dictionaries({}, optional={
    **{name: JSONISH | st.sampled_from([1, 2.5, True, -1, 0, 10**12, float("nan")]) for name in fraud_rules.PARAMETERS},
    "tenant_id": st.sampled_from(["t1", "*", "", "t 1", None, 5]) | st.text(max_size=5),
    "effective_from": st.sampled_from(["2026-01-01 00:00:00.000", "yesterday", None, 3]),
    "extra": JSONISH})


@FUZZ
@given(key=st.none() | st.binary(max_size=64) | st.just(b'{"tenant_id": "t1"}'),
       value=st.none() | st.binary(max_size=256) | RULE_LIKE.map(lambda m: json.dumps(m).encode()),
       effective_from_ok=st.booleans())
def test_check_rule_returns_a_verdict_for_any_record(key, value, effective_from_ok):
    check, metrics = opened(CheckRule())
    row = check.eval(key, value, effective_from_ok)
    assert row[0] in (None, "json_parse_error", "invalid_rule"), row
    assert metrics.total("vigil_internal_errors") == 0
    if row[0] is None:  # accepted: typed values the JVM can take (DOUBLE gets floats, BIGINT ints)
        for name, got in zip(fraud_rules.PARAMETERS, row[3:]):
            kind = fraud_rules.SQL_KINDS[name]
            assert got is None or type(got) is {"bool": bool, "int": int, "float": float}[kind], (name, got)
    else:
        assert isinstance(row[1], str) and 0 < len(row[1]) <= 1000 and all(v is None for v in row[2:])


def test_check_rule_accepts_what_vigil_rules_publishes_and_refuses_each_kind_of_bad_rule():
    check, _ = opened(CheckRule())
    key = b'{"tenant_id": "t1"}'
    good = fraud_rules.rule_message("t1", {"velocity_1m": 15, "refund_abuse_min_ratio": 0.5}, 0)
    assert check.eval(key, json.dumps(good).encode(), True)[0] is None
    defaults = fraud_rules.default_message(0)
    assert check.eval(b'{"tenant_id": "*"}', json.dumps(defaults).encode(), True)[0] is None
    for change, reason in [({"velocity_1m": "15"}, "invalid_rule"), ({"velocity_1m": 1.5}, "invalid_rule"),
                           ({"velocity_1m": 0}, "invalid_rule"), ({"refund_abuse_min_ratio": 1.5}, "invalid_rule"),
                           ({"card_testing_enabled": 1}, "invalid_rule"), ({"no_such": 1}, "invalid_rule"),
                           ({"card_testing_small_usd": float("inf")}, "invalid_rule")]:
        row = check.eval(key, json.dumps({**good, **change}).encode(), True)
        assert row[0] == reason, (change, row)
        assert list(change)[0] in row[1]
    assert check.eval(key, json.dumps(good).encode(), False)[0] == "invalid_rule"  # SQL could not read the time
    assert check.eval(key, None, True)[0] == "invalid_rule"
    assert check.eval(key, b'{"velocity_1m": "lots"', True)[0] == "json_parse_error"
    assert check.eval(key, b"[" * 10_000, True)[0] == "json_parse_error"  # too deep for the parser
    assert check.eval(key, b" " * 20_000, True)[0] == "invalid_rule"  # over the size limit


def test_a_bug_in_rule_parsing_becomes_an_internal_error_row(monkeypatch):
    check, _ = opened(CheckRule())
    monkeypatch.setattr(fraud_rules, "parse_rule_message", lambda *a: {}["boom"])
    row = check.eval(b"k", b"{}", True)
    assert row[0] == "internal_error" and row[1] == "KeyError: 'boom'"
    assert check._errors.count == 1  # the metric is counted in Java where the row is routed


@settings(max_examples=500, deadline=None, derandomize=True)
@given(payload=st.none() | st.binary(max_size=300), key=st.none() | st.binary(max_size=40))
def test_ingest_validation_udf_returns_a_row_for_any_bytes(payload, key):
    validate, metrics = opened(ValidateEvent(ValidationRules(), None, "event-v2.avsc"))
    row = validate.eval(payload, key)
    assert row[0] in REASONS and row[0] != "internal_error", row
    assert row[2] == len(payload or b"")
    assert metrics.total("vigil_internal_errors") == 0


def test_a_bug_in_ingest_validation_becomes_an_internal_error_row_with_no_event(monkeypatch):
    import udfs.ingest_udfs as adapter
    validate, metrics = opened(ValidateEvent(ValidationRules(), None, "event-v2.avsc"))
    monkeypatch.setattr(adapter, "validate", lambda *a: 1 / 0)
    row = validate.eval(b"\x00\x00\x00\x00\x01", b"t1:u1")
    assert (row[0], row[1], row[2]) == ("internal_error", "ZeroDivisionError: division by zero", 5)
    assert all(value is None for value in row[3:])
    assert metrics.total("vigil_internal_errors") == 1


def test_an_infrastructure_failure_is_not_turned_into_a_verdict(monkeypatch):
    import udfs.ingest_udfs as adapter
    validate, _ = opened(ValidateEvent(ValidationRules(), None, "event-v2.avsc"))

    def registry_down(*_args):
        raise CatalogUnavailable("schema registry unreachable")
    monkeypatch.setattr(adapter, "validate", registry_down)
    with pytest.raises(CatalogUnavailable):
        validate.eval(b"\x00\x00\x00\x00\x01", b"t1:u1")
    with pytest.raises(CatalogUnavailable):
        InternalErrors("x").guard(registry_down, fallback=lambda detail: detail)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(tenant=st.none() | st.text(max_size=20), features=st.none() | st.text(max_size=80) | JSONISH.map(json.dumps))
def test_the_fast_path_returns_a_decision_or_an_error_for_any_features(tenant, features):
    fast, _ = opened(FastDecision(ModelConfig(snapshot_dir=None)))
    row = fast.eval(tenant, features)
    assert len(row) == 7 and isinstance(row[5], int)
    if row[6] is not None:  # an error instead of a decision: routed to the dead-letter topic
        assert row[0] is None and row[6].split(":")[0].isidentifier()
    assert fast.errors.count == (row[6] is not None)  # the metric is counted in Java where the row is routed


class TimerService:
    def __init__(self, watermark):
        self.watermark = watermark
        self.timers = []

    def current_watermark(self):
        return self.watermark

    def register_event_time_timer(self, at):
        self.timers.append(at)


class Context:
    def __init__(self, key, watermark):
        self.key, self.timers = key, TimerService(watermark)

    def get_current_key(self):
        return self.key

    def timer_service(self):
        return self.timers


class State:
    def __init__(self):
        self.value_, self.items = None, {}

    def value(self):
        return self.value_

    def update(self, value):
        self.value_ = value

    def get(self, key):
        return self.items.get(key)

    def put(self, key, value):
        self.items[key] = value

    def remove(self, key):
        self.items.pop(key, None)


class RuntimeContext:
    def __init__(self):
        self.metrics = MetricGroup()

    def get_state(self, _descriptor):
        return State()

    def get_map_state(self, _descriptor):
        return State()

    def get_metrics_group(self):
        return self.metrics


class Item(dict):
    def as_dict(self):
        return dict(self)


def test_a_batch_the_risk_scorer_cannot_decide_becomes_one_error_row_per_event(monkeypatch):
    scorer = RiskScorer(ModelConfig(snapshot_dir=None), label_horizon_ms=1000)
    runtime = RuntimeContext()
    scorer.open(runtime)
    payment = Item(kind="payment", tenant_id="t1", event_id="e1", event_ms=10, appended_ms=None, entity_type="user",
                   entity_id="u1", fraud_pattern=None, score=None, detail="not json {", rules_ms=None,
                   is_fraud=None, label_ms=None)
    hit = Item(payment, kind="hit", fraud_pattern="velocity", score=0.7, detail="{}")
    rows = list(scorer.process_element(payment, Context("t1", watermark=100)))  # behind the watermark: now
    rows += list(scorer.process_element(hit, Context("t1", watermark=100)))
    assert [row[OUTPUT_FIELDS.index("output")] for row in rows] in (["error"], ["error", "alert"]), rows
    error = rows[0]
    evidence = json.loads(error[OUTPUT_FIELDS.index("evidence")])
    assert evidence["error"].startswith("JSONDecodeError") and evidence["inputs"][0]["event_id"] == "e1"
    assert error[OUTPUT_FIELDS.index("tenant_id")] == "t1" and error[OUTPUT_FIELDS.index("event_id")] == "e1"
    assert runtime.metrics.total("vigil_internal_errors") == 1
    # An item whose time is missing fails before it is even queued: it is an error row as well.
    broken = Item(payment, event_ms=None)
    rows = list(scorer.process_element(broken, Context("t1", watermark=100)))
    assert [row[0] for row in rows] == ["error"]


def test_error_rows_group_the_inputs_of_each_event():
    items = [{"kind": "payment", "tenant_id": "t", "event_id": "e1", "event_ms": 1},
             {"kind": "hit", "tenant_id": "t", "event_id": "e1", "event_ms": 1},
             {"kind": "label", "tenant_id": "t", "event_id": "e0", "event_ms": 0}]
    rows = error_rows(items, "ValueError: x")
    assert sorted(row[OUTPUT_FIELDS.index("event_id")] for row in rows) == ["e0", "e1"]
    assert all(row[0] == "error" and row[OUTPUT_FIELDS.index("reason_codes")] == ["internal_error"] for row in rows)
