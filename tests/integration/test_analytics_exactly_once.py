"""The analytics job, bounded, on a Flink MiniCluster into PostgreSQL: a seeded shop's events (two
tenants, one hot with a hot merchant, five currencies, out of order within the watermark bound,
across midnight UTC), undecodable records, dead letters and fraud outputs go in; every row of
every table it writes equals a batch recomputation in Python from the same inputs, and no other
row is written: nothing counted twice, nothing missing."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

from tests.analytics_checks import (KEYS, analytics_command, analytics_topics, appended_times, arrival_order,
                                    dead_letter, differences, expected_products, expected_quality, expected_sales,
                                    fraud_columns, read_table, shop_events, write_avro, write_dead_letters,
                                    write_events)
from vigil.paths import PROJECT_ROOT

MIDNIGHT = int(datetime(2026, 12, 2, tzinfo=timezone.utc).timestamp() * 1000)
START = MIDNIGHT - 8 * 60_000           # 23:52 to 00:08: two days, two hours, 16 minutes
EVENTS = 2400
GARBAGE = 3


def _naive(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).replace(tzinfo=None)


def test_every_aggregate_equals_a_batch_recomputation(kafka, schema_registry, own_database):
    names = analytics_topics(kafka)
    events = shop_events(seed=13, start_ms=START, count=EVENTS, span_ms=16 * 60_000)
    write_events(kafka, schema_registry, names["clean"], arrival_order(events, seed=13, max_disorder_ms=3000),
                 garbage=GARBAGE)
    letters = [dead_letter(reason, tenant, START + i * 7_000)
               for i, (reason, tenant) in enumerate([("invalid_currency", "t-hot"), ("late_event", "t-hot"),
                                                      ("bad_magic_byte", None), ("duplicate", "t-calm")] * 40)]
    dlq_garbage_at = [START + 30_000, MIDNIGHT + 5_000]
    write_dead_letters(kafka, names["dlq"], letters, dlq_garbage_at)
    alerts, incidents, features = _fraud_outputs()
    columns = fraud_columns()
    write_avro(kafka, schema_registry, names["alerts"], columns["alert_columns"],
               [(a["record_key"], a) for a in alerts])
    write_avro(kafka, schema_registry, names["incidents"], columns["incident_columns"],
               [(i["incident_id"], i) for i in incidents])
    write_avro(kafka, schema_registry, names["features"], columns["feature_table_columns"],
               [(f["record_key"], f) for f in features])

    result = subprocess.run(analytics_command(names, own_database, "--bounded"), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for grain in ("minute", "hour", "day"):
        written = read_table(own_database, f"sales_{grain}", KEYS["sales"])
        assert not differences(expected_sales(events, grain), written), differences(expected_sales(events, grain), written)
    for grain in ("hour", "day"):
        written = read_table(own_database, f"products_{grain}", KEYS["products"])
        assert not differences(expected_products(events, grain), written)

    garbage_values = {b"not an avro record %d" % i for i in range(GARBAGE)}
    rejections = ([(letter["tenant_id"] or "?", letter["reason"], letter["_at"]) for letter in letters]
                  + [("?", "dlq_undecodable", at) for at in dlq_garbage_at]
                  + [("?", "analytics_undecodable", at)
                     for at in appended_times(kafka, names["clean"], garbage_values)])
    assert len(rejections) == len(letters) + len(dlq_garbage_at) + GARBAGE
    for grain in ("minute", "hour", "day"):
        written = read_table(own_database, f"quality_{grain}", KEYS["quality"])
        assert not differences(expected_quality(rejections, grain), written)

    _assert_mirrors(own_database, alerts, incidents, features)


def _fraud_outputs() -> tuple[list[dict], list[dict], list[dict]]:
    """Alerts, two versions of one incident and one of another, two versions of one entity's
    features and one of another, as the fraud job writes them."""
    at = START + 60_000
    alerts = [{"record_key": f"t-hot:card-{i}", "alert_id": f"alert-{i}", "tenant_id": "t-hot",
               "fraud_pattern": pattern, "entity_type": "card", "entity_id": f"card-{i}", "event_id": f"e-{i}",
               "event_time": at + i, "score": score, "reason_codes": codes, "evidence": "{}",
               "rules_effective_from": None, "anomaly_score": None, "supervised_score": 0.5, "shadow_score": None,
               "model_versions": "m1", "detection_latency_ms": 12, "decided_at": at + i + 5}
              for i, (pattern, score, codes) in enumerate([("card_testing", 0.95, ["card_testing", "velocity"]),
                                                           (None, 0.71, ["model_supervised"]),
                                                           ("velocity", 0.4, ["velocity"])])]
    base = {"tenant_id": "t-hot", "severity": "high", "first_seen": at, "opened_by": "card_testing",
            "latest_event_id": "e-1", "updated_at": at}
    incidents = [
        {**base, "incident_id": "inc-a", "status": "open", "max_score": 0.8, "last_seen": at, "alert_count": 1,
         "patterns": ["card_testing"], "entities": ["card:c1"], "alert_ids": ["alert-0"]},
        {**base, "incident_id": "inc-b", "status": "open", "max_score": 0.6, "last_seen": at, "alert_count": 1,
         "patterns": [], "entities": ['user:odd"name\\x'], "alert_ids": ["alert-9"]},
        {**base, "incident_id": "inc-a", "status": "closed", "max_score": 0.95, "last_seen": at + 9_000,
         "alert_count": 2, "patterns": ["card_testing", "velocity"], "entities": ["card:c1", "user:u1"],
         "alert_ids": ["alert-0", "alert-2"]},
    ]
    from udfs.fraud_features import FEATURES

    def feature(key: str, as_of: int, events_1h: int) -> dict:
        tenant, entity_type, entity_id = key.split(":")
        values = {name: None for name in FEATURES}
        values.update(events_1h=events_1h, amount_usd_1h=12.5 * events_1h)
        return {"record_key": key, "tenant_id": tenant, "entity_type": entity_type, "entity_id": entity_id,
                "as_of_event_id": f"e-{events_1h}", "as_of": as_of, **values}
    features = [feature("t-hot:user:u1", at, 1), feature("t-calm:card:c9", at, 3), feature("t-hot:user:u1", at + 1, 2)]
    return alerts, incidents, features


def _assert_mirrors(database: str, alerts: list[dict], incidents: list[dict], features: list[dict]) -> None:
    severity = {0.95: "critical", 0.71: "medium", 0.4: "low"}
    written = read_table(database, "fraud_alerts", ("alert_id",))
    assert {key[0]: (row["tenant_id"], row["event_id"], row["pattern"], row["entity_type"], row["entity_id"],
                     row["score"], row["severity"], row["event_time"], json.loads(row["reasons"]))
            for key, row in written.items()} == \
        {a["alert_id"]: (a["tenant_id"], a["event_id"], a["fraud_pattern"] or "model", a["entity_type"],
                         a["entity_id"], a["score"], severity[a["score"]], _naive(a["event_time"]), a["reason_codes"])
         for a in alerts}
    latest = {i["incident_id"]: i for i in incidents}          # the last version written wins
    written = read_table(database, "fraud_incidents", ("incident_id",))
    assert {key[0]: (row["status"], row["max_score"], row["alert_count"], row["patterns"], row["entities"],
                     row["last_seen"], row["opened_by"]) for key, row in written.items()} == \
        {key: (i["status"], i["max_score"], i["alert_count"], i["patterns"], i["entities"], _naive(i["last_seen"]),
               i["opened_by"]) for key, i in latest.items()}
    from udfs.fraud_features import FEATURES
    latest = {f["record_key"]: f for f in features}
    written = read_table(database, "entity_features", ("tenant_id", "entity_type", "entity_id"))
    assert {":".join(key): (row["as_of"], row["as_of_event_id"], row["features"]) for key, row in written.items()} == \
        {key: (_naive(f["as_of"]), f["as_of_event_id"], {name: f[name] for name in FEATURES})
         for key, f in latest.items()}
