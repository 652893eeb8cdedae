"""vigil/demo_report.py: what `vigil demo` prints, from values (no services)."""

from collections import Counter

from vigil import demo_report
from vigil.demo_report import Summary


def _clean(tenant, offset, version=2):
    return {"tenant_id": tenant, "event_type": "page_view", "schema_version": version, "payment_method": None,
            "source_partition": 0, "source_offset": offset}


def test_ingest_accounting_and_busiest_tenant():
    summary = Summary(raw=4)
    for offset, tenant in enumerate(["t1", "t2", "t2"]):
        summary.add_clean(_clean(tenant, offset))
    summary.add_rejected({"reason": "undecodable", "source_partition": 0, "source_offset": 3})
    assert summary.accounted_once and summary.busiest_tenant == "t2"
    text = demo_report.render_ingest(summary, Counter({"card_testing": 7}))
    assert "every input accounted for exactly once: YES" in text
    assert "undecodable" in text and "card_testing" in text
    summary.add_rejected({"reason": "undecodable", "source_partition": 0, "source_offset": 3})  # seen twice
    assert not summary.accounted_once


ALERTS = [
    {"alert_id": "a1", "tenant_id": "t2", "fraud_pattern": "card_testing", "entity_type": "card", "entity_id": "c1",
     "event_id": "e1", "score": 0.9, "reason_codes": ["card_testing", "model_anomaly"],
     "evidence": '{"patterns": [{"pattern": "card_testing", "small_attempts": 6}], "window_s": 600}',
     "detection_latency_ms": 1234, "anomaly_score": 0.7, "supervised_score": None},
    {"alert_id": "a2", "tenant_id": "t2", "fraud_pattern": None, "entity_type": "user", "entity_id": "u1",
     "event_id": "e2", "score": 0.95, "reason_codes": ["model_anomaly"], "evidence": None},
    {"alert_id": "a3", "tenant_id": "t1", "fraud_pattern": "card_testing", "entity_type": "card", "entity_id": "c2",
     "event_id": "e3", "score": 0.5, "reason_codes": ["card_testing"], "evidence": "not json"},
]


def test_alerts_by_pattern_counts_model_only_alerts_as_model():
    assert demo_report.alerts_by_pattern(ALERTS) == Counter({"card_testing": 2, "model": 1})


def test_the_explained_alert_has_evidence_and_the_most_reasons():
    assert demo_report.explained_alert(ALERTS)["alert_id"] == "a1"
    assert demo_report.explained_alert([]) is None


def test_render_fraud_explains_one_alert():
    text = demo_report.render_fraud(ALERTS, Counter({"card_testing": 40}), incidents=2)
    words = " ".join(text.split())
    assert "alerts 3" in words and "incidents 2" in words
    assert "reason codes  card_testing, model_anomaly" in text
    assert "small_attempts" in text and "window_s: 600" in text
    assert "supervised -" in text and "1,234 ms" in text
    assert "no alert to explain" in demo_report.render_fraud([], Counter(), 0)


def test_render_analytics_from_the_api_answers():
    answers = {
        "revenue": {"totals": {"gmv_usd": 12345.678, "orders": 42, "avg_basket_usd": 293.9447}},
        "funnel": {"steps": {"page_views": 1000, "add_to_carts": 300, "checkouts": 100, "payment_attempts": 60,
                             "payments_approved": 42},
                   "conversion": {"page_views_to_payments_approved": 0.042}},
        "approval_rate": {"totals": {"payments_approved": 42, "payments_declined": 8, "approval_rate": 0.84}},
        "dlq_rate": {"totals": {"clean_events": 980, "rejections": 20, "dlq_rate": 0.02}},
        "alerts_by_pattern": {"by_pattern": {"velocity": 3, "card_testing": 5}},
        "incidents_by_pattern": {"by_pattern": {}},
    }
    text = demo_report.render_analytics("t2", answers, "http://127.0.0.1:8090")
    assert "busiest tenant, t2" in text
    assert "12,345.68" in text and "293.94" in text
    words = " ".join(text.split())
    assert "approval rate 84.0 % (42 approved, 8 declined)" in words
    assert "DLQ rate 2.0 % (20 rejected of 1,000)" in words
    assert "page views -> approved payments: 4.2 %" in text
    assert text.index("card_testing") < text.index("velocity")
    assert "none yet" in text


def test_render_analytics_with_nothing_yet():
    text = demo_report.render_analytics("t2", {}, "http://127.0.0.1:8090")
    words = " ".join(text.split())
    assert "orders 0" in words and "approval rate - (0 approved, 0 declined)" in words


def test_the_dashboard_url_carries_the_key_in_the_fragment():
    assert demo_report.dashboard_url("http://127.0.0.1:8090", "vgl_x") == "http://127.0.0.1:8090/dashboard#key=vgl_x"
    text = demo_report.render_next("http://127.0.0.1:8090", "vgl_x", "t2", "/x/labels.jsonl", "http://127.0.0.1:8081")
    assert "/dashboard#key=vgl_x" in text and "make down" in text
