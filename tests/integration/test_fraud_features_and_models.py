"""Features and models of the fraud job against a batch recomputation and a replay, on the real
broker, registry and Flink (MiniCluster, bounded runs).

One seeded stream of mixed traffic (two tenants, shared cards and devices, several currencies,
events without a place, disorder within the watermark bound) and its chargeback labels:
- features.online holds, for every user, card, device and merchant, exactly the values that
  udfs/fraud_features.batch_features computes from the same events;
- every payment attempt is scored once; a second run over the same topics (fresh state, fresh
  snapshots) gives identical scores; labels are learned in event-time order; snapshots exist.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.fraud_checks import ev, fraud_topics, run_bounded_fraud_job, write_clean, write_labels
from udfs.fraud_features import ENTITY_COLUMNS, FEATURES, batch_features
from vigil.event_model import UNITS_PER_USD
from vigil.registry.catalog import read_values

CITIES = [("FR", 48.857, 2.352), ("DE", 52.520, 13.405), ("US", 40.713, -74.006), ("JP", 35.690, 139.692)]


def mixed_traffic(t0: int, n: int = 1500, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        tenant = rng.choice(["t1", "t2"])
        user = f"u{rng.randrange(25)}"
        kind = rng.choices(["page_view", "login", "payment_attempt", "checkout", "refund"], [4, 2, 8, 1, 1])[0]
        country, lat, lon = rng.choice(CITIES)
        money = kind in ("payment_attempt", "checkout", "refund")
        event = ev(kind, t0 + i * 4000 + rng.randrange(3500), tenant=tenant, user=user,
                   card=f"c{rng.randrange(15)}" if kind in ("payment_attempt", "refund") else None,
                   device=f"d{rng.randrange(12)}", ip=f"10.0.0.{rng.randrange(20)}",
                   amount=f"{rng.uniform(1, 900):.2f}" if money else None,
                   currency=rng.choice(["USD", "EUR", "JPY"]), country=country, lat=lat, lon=lon)
        event["merchant_id"] = f"m{rng.randrange(4)}"
        if rng.random() < 0.1:
            event["latitude"] = event["longitude"] = None
        events.append(event)
    return events


def chargebacks(events: list[dict], seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    return [{"tenant_id": e["tenant_id"], "event_id": e["event_id"], "event_time": e["event_time"],
             "label_time": e["event_time"] + rng.randrange(60_000, 600_000), "is_fraud": rng.random() < 0.15,
             "outcome": "chargeback"} for e in events if e["event_type"] == "payment_attempt"]


@pytest.fixture(scope="module")
def runs(kafka, schema_registry, tmp_path_factory):
    t0 = int(time.time() * 1000) - 6 * 3600_000
    events = mixed_traffic(t0)
    labels = chargebacks(events)
    first = fraud_topics(kafka)
    written = sorted(events, key=lambda e: e["event_time"])
    random.Random(3).shuffle(written)
    written.sort(key=lambda e: e["event_time"] // 2000)  # disorder within 2 s (bound: 5 s)
    write_clean(kafka, schema_registry, first["clean"], written)
    write_labels(kafka, first["chargebacks"], labels)
    second = {**fraud_topics(kafka), "clean": first["clean"], "chargebacks": first["chargebacks"],
              "rules": first["rules"]}
    jvm = {**fraud_topics(kafka), "clean": first["clean"], "chargebacks": first["chargebacks"], "rules": first["rules"]}
    outcome = {"events": events, "labels": labels}
    # The replay runs the two paths as two jobs, as production does (--paths exact, --paths fast).
    for name, names, jobs in (("first", first, [()]), ("second", second, [("--paths", "exact"), ("--paths", "fast")]),
                              ("jvm", jvm, [("--scorer", "jvm")])):
        snapshots = tmp_path_factory.mktemp(f"models-{name}")
        for extra in jobs:
            run_bounded_fraud_job(names, "--model-snapshot-dir", str(snapshots), "--snapshot-every", "100",
                                  "--labels-idle-timeout", "30 s", *extra)
        outcome[name] = {"scores": read_values(kafka, schema_registry, names["scores"]),
                         "features": read_values(kafka, schema_registry, names["features"]),
                         "decisions": read_values(kafka, schema_registry, names["decisions"]),
                         "snapshots": snapshots}
    return outcome


def _usd(event: dict) -> float | None:
    if event["amount"] is None:
        return None
    return float(event["amount"]) / UNITS_PER_USD.get(event["currency"], 1.0)


def test_online_features_equal_a_batch_recomputation(runs):
    by_entity = defaultdict(list)
    for event in runs["events"]:
        row = {**event, "amount_usd": _usd(event)}
        for entity_type, column in ENTITY_COLUMNS.items():
            if event[column] is not None:
                by_entity[(event["tenant_id"], entity_type, event[column])].append(row)
    latest = {}
    for value in runs["first"]["features"]:  # upserts in partition order: the last one wins
        latest[(value["tenant_id"], value["entity_type"], value["entity_id"])] = value
    assert set(latest) == set(by_entity)
    mismatches = []
    for key, entity_events in by_entity.items():
        expected = batch_features(entity_events)[-1]
        actual = latest[key]
        assert actual["as_of_event_id"] == expected["event_id"], key
        for name in FEATURES:
            want, got = expected[name], actual[name]
            same = (want is None and got is None) or (
                want is not None and got is not None and math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-9))
            if not same:
                mismatches.append((key, name, want, got))
    assert not mismatches, mismatches[:10]
    # The traffic exercised every feature (no column trivially null or zero everywhere).
    for name in FEATURES:
        assert any(latest[key][name] for key in latest), name


def _scores(run: dict) -> dict:
    return {s["event_id"]: (s["anomaly_score"], s["supervised_score"], s["score"], tuple(s["reason_codes"]))
            for s in run["scores"]}


def test_every_payment_is_scored_once_and_a_replay_scores_identically(runs):
    payments = {e["event_id"] for e in runs["events"] if e["event_type"] == "payment_attempt"}
    first = runs["first"]["scores"]
    assert sorted(s["event_id"] for s in first) == sorted(payments)
    assert all(s["anomaly_score"] is not None and s["supervised_score"] is not None for s in first)
    assert len({s["anomaly_score"] for s in first}) > 10  # scores vary: the model is not constant
    assert _scores(runs["first"]) == _scores(runs["second"])


def test_labels_are_learned_in_event_time_order(runs):
    """Models are per tenant: a payment's model has learned exactly its tenant's labels up to
    the payment's event time (labels at the same millisecond first), however they were read."""
    label_times = defaultdict(list)
    for label in runs["labels"]:
        label_times[label["tenant_id"]].append(label["label_time"])
    event_time = {e["event_id"]: e["event_time"] for e in runs["events"]}
    for score in runs["first"]["scores"]:
        seen = json.loads(score["evidence"])["labels_seen"]
        at = event_time[score["event_id"]]
        assert seen == sum(1 for t in label_times[score["tenant_id"]] if t <= at), score["event_id"]
    assert max(json.loads(s["evidence"])["labels_seen"] for s in runs["first"]["scores"]) > 100


def test_model_snapshots_are_versioned_per_tenant(runs):
    root: Path = runs["first"]["snapshots"]
    for version in ("hst-v1", "logreg-v1"):
        for tenant in ("t1", "t2"):
            files = sorted((root / version / tenant).glob("*.pkl"))
            assert 1 <= len(files) <= 3, (version, tenant, files)


@pytest.mark.parametrize("run", ["first", "second"])
def test_the_low_latency_path_decides_every_payment_under_the_exact_paths_alert_id(runs, run):
    """The low-latency path decides every payment once, under the exact path's id, in one job
    with the exact path (first) and as a job of its own (second). (Its features are an unbounded
    processing-time OVER, which emits as each row arrives: no timer is left pending when a
    bounded run ends, unlike the 1-hour RANGE window it replaced.)"""
    exact = {s["event_id"]: s["alert_id"] for s in runs[run]["scores"]}
    fast = runs[run]["decisions"]
    assert {d["event_id"] for d in fast} == set(exact) and len(fast) == len(exact)
    for decision in fast:
        assert decision["alert_id"] == exact[decision["event_id"]]
        assert 0 <= decision["score"] <= 1 and decision["decision_latency_ms"] is not None
        assert json.loads(decision["features"])["events_1h"] >= 1


def test_the_jvm_baseline_scores_the_same_payments_from_the_same_features(runs):
    """--scorer jvm (the benchmarks' baseline): one score and one low-latency decision per payment,
    same ids, no Python."""
    river = {s["event_id"]: s for s in runs["first"]["scores"]}
    jvm = {s["event_id"]: s for s in runs["jvm"]["scores"]}
    assert set(jvm) == set(river) and len(runs["jvm"]["scores"]) == len(jvm)
    assert all(0 <= s["score"] <= 1 and s["model_versions"] == "jvm-fixed-weights" for s in jvm.values())
    assert {s["alert_id"] for s in jvm.values()} == {s["alert_id"] for s in river.values()}
    latest = [{(f["tenant_id"], f["entity_type"], f["entity_id"]): f for f in runs[run]["features"]}
              for run in ("first", "jvm")]
    assert latest[0] == latest[1]
    fast = runs["jvm"]["decisions"]
    assert sorted(d["event_id"] for d in fast) == sorted(jvm) and all(d["reason_codes"] == ["fixed_weights"] for d in fast)
