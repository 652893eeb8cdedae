"""A threshold changed while the fraud job runs: no restart, and the next attack is judged by
the new rule (the pattern tests change one by effective time; this one does it live). Hostile
records on every input of the running job (malformed and invalid rules, labels, undecodable
events) go to its dead-letter topic: the job keeps running and the tenant keeps its rules."""

from __future__ import annotations

import json
import subprocess
import time

from confluent_kafka import Producer

from tests.fraud_checks import ev, fraud_job_command, fraud_topics, set_rules, write_clean
from vigil import fraud_rules
from vigil import kafka_io, procs, topics
from vigil.paths import PROJECT_ROOT
from vigil.registry.catalog import read_values

MIN = 60_000


def attack(card: str, at_ms: int, tenant: str = "t3") -> list[dict]:
    """Five small attempts, then a large one: card testing under the default rules."""
    events = [ev("payment_attempt", at_ms + i * 20_000, tenant=tenant, user=f"u-{card}", card=card, amount="1.00")
              for i in range(5)]
    return events + [ev("payment_attempt", at_ms + 130_000, tenant=tenant, user=f"u-{card}", card=card, amount="900.00")]


def card_testing_cards(alerts: list[dict]) -> set[str]:
    """Cards with a card-testing hit (an alert names its strongest hit; all are in the evidence)."""
    return {hit["entity_id"] for alert in alerts for hit in json.loads(alert["evidence"])["patterns"]
            if hit["pattern"] == "card_testing"}


def wait_for_alerts(kafka, registry, topic, predicate, timeout_s=120) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alerts = read_values(kafka, registry, topic)
        if predicate(alerts):
            return alerts
        time.sleep(2)
    return read_values(kafka, registry, topic)


def hostile_inputs(names: dict, effective_ms: int) -> dict[tuple[str, str], str]:
    """Records each input of the job must refuse, by (topic, description) -> expected DLQ reason.
    Every rule here would lower t3's card-testing threshold to 2 if it were accepted."""
    effective = fraud_rules.rule_message("t3", {"card_testing_min_small": 2}, effective_ms)
    as_json = lambda **changes: json.dumps({**effective, **changes}).encode()  # noqa: E731
    key_t3 = json.dumps({"tenant_id": "t3"}).encode()
    rules = {
        "truncated JSON": (key_t3, b'{"velocity_1m": "lots"', "json_parse_error"),
        "a string count": (key_t3, as_json(card_testing_min_small="2"), "invalid_rule"),
        "a negative count": (key_t3, as_json(card_testing_min_small=-1), "invalid_rule"),
        "an unknown parameter": (key_t3, as_json(card_testing_min_smal=2), "invalid_rule"),
        "the key of another tenant": (json.dumps({"tenant_id": "t4"}).encode(), as_json(), "invalid_rule"),
        "a JSON array": (key_t3, b"[1, 2]", "invalid_rule"),
        "a bad effective_from": (key_t3, as_json(effective_from="yesterday"), "invalid_rule"),
        "a tombstone": (key_t3, None, "invalid_rule"),
        "invalid UTF-8": (key_t3, b'{"tenant_id": "t3\xff\xfe"}', "json_parse_error"),
    }
    label = {"tenant_id": "t3", "event_id": "e-x", "event_time": effective_ms, "label_time": effective_ms + 60_000,
             "is_fraud": True, "outcome": "chargeback"}
    labels = {
        "random bytes": (b"\x00\xff\x10garbage", "json_parse_error"),
        "a wrongly typed time": (json.dumps({**label, "label_time": "soon"}).encode(), "json_parse_error"),
        "no is_fraud": (json.dumps({k: v for k, v in label.items() if k != "is_fraud"}).encode(), "invalid_label"),
        "a label before its payment": (json.dumps({**label, "label_time": effective_ms - 1}).encode(), "invalid_label"),
        "a tombstone": (None, "json_parse_error"),
    }
    events = {
        "random bytes": (b"\x07not avro at all", "avro_decode_error"),
        "an unknown schema id": (b"\x00\x7f\xff\xff\xf0" + b"\x02" * 20, "avro_decode_error"),
    }
    producer = Producer({"bootstrap.servers": names["bootstrap"]})
    expected = {}
    for what, (key, value, reason) in rules.items():
        producer.produce(names["rules"], key=key, value=value)
        expected[(names["rules"], what)] = reason
    for what, (value, reason) in labels.items():
        producer.produce(names["chargebacks"], key=b"t3:e-x", value=value, timestamp=effective_ms)
        expected[(names["chargebacks"], what)] = reason
    for what, (value, reason) in events.items():
        producer.produce(names["clean"], key=b"t3:u-hostile", value=value, partition=0)
        expected[(names["clean"], what)] = reason
    assert producer.flush(30) == 0
    return expected


def test_a_rule_published_while_the_job_runs_applies_to_the_next_events(kafka, schema_registry, tmp_path):
    names = fraud_topics(kafka)
    t0 = int(time.time() * 1000) - 3 * 3600_000
    set_rules(kafka, names["rules"], fraud_rules.DEFAULT_KEY, {}, t0 - 24 * 3600_000)
    log = open(tmp_path / "fraud.log", "w")
    job = subprocess.Popen(fraud_job_command(names), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        # 1. Under the defaults the attack alerts (a later event moves the watermark past it).
        first = attack("c-first", t0)
        write_clean(kafka, schema_registry, names["clean"], first, tail_at_ms=t0 + 10 * MIN)
        alerts = wait_for_alerts(kafka, schema_registry, names["alerts"],
                                 lambda found: "c-first" in card_testing_cards(found), timeout_s=240)
        assert "c-first" in card_testing_cards(alerts), "no alert under the default rules"

        # 2. Raise the threshold for t3 while the job runs; then the same attack again, and a
        #    control attack on another tenant that still alerts (proof the job kept processing).
        set_rules(kafka, names["rules"], "t3", {"card_testing_min_small": 8}, t0 + 15 * MIN)
        time.sleep(3)
        # 3. Hostile records on every input; each refused rule would have lowered t3's threshold.
        expected_dead = hostile_inputs({**names, "bootstrap": kafka}, t0 + 16 * MIN)
        # Well-formed events from the year 2100, one in every partition, would push the watermark
        # past every later event and silence every pattern: refused, the watermark unmoved.
        write_clean(kafka, schema_registry, names["clean"], [], tail_at_ms=4_102_444_800_000)
        for partition in range(topics.like(names["clean"], topics.CLEAN).partitions):
            expected_dead[(names["clean"], f"an event from the year 2100 in partition {partition}")] = "invalid_event"
        time.sleep(3)  # the job reads them and emits its watermarks before the next attack arrives
        second = attack("c-second", t0 + 20 * MIN) + attack("c-control", t0 + 20 * MIN, tenant="t4")
        write_clean(kafka, schema_registry, names["clean"], second, tail_at_ms=t0 + 40 * MIN)
        alerts = wait_for_alerts(kafka, schema_registry, names["alerts"],
                                 lambda found: "c-control" in card_testing_cards(found))
        assert job.poll() is None, "the job stopped"
        # The low-latency path decided every payment on arrival, without waiting for watermarks.
        payments = {e["event_id"] for e in first + second if e["event_type"] == "payment_attempt"}
        decisions = wait_for_alerts(kafka, schema_registry, names["decisions"],
                                    lambda found: payments <= {d["event_id"] for d in found})
        # 4. Events 19 minutes behind the watermark (the tail above is at 40 minutes): the event-time
        #    path cannot take them; dead-lettered as late_event with their bytes, and the late
        #    payment still scored (reason code late_event) and decided on arrival.
        late = [ev("payment_attempt", t0 + 21 * MIN, tenant="t4", user="u-late", card="c-late", amount="30.00"),
                ev("page_view", t0 + 21 * MIN + 1, tenant="t4", user="u-late")]
        write_clean(kafka, schema_registry, names["clean"], late)
        for event in late:
            expected_dead[(names["clean"], f"a late {event['event_type']}")] = "late_event"
        late_id = late[0]["event_id"]
        scores = wait_for_alerts(kafka, schema_registry, names["scores"],
                                 lambda found: late_id in {s["event_id"] for s in found})
        decisions = wait_for_alerts(kafka, schema_registry, names["decisions"],
                                    lambda found: late_id in {d["event_id"] for d in found})
        dead = wait_for_dead_letters(kafka, names["dlq"], len(expected_dead))
        assert job.poll() is None, "the job stopped"
    finally:
        procs.kill_tree(job.pid)
        job.wait(timeout=30)
        log.close()
    assert card_testing_cards(alerts) == {"c-first", "c-control"}, card_testing_cards(alerts)
    assert all(alert["rules_effective_from"] is not None for alert in alerts)
    assert payments <= {d["event_id"] for d in decisions}
    assert all(d["decision_latency_ms"] is not None and d["decision_latency_ms"] >= 0 for d in decisions)
    late_scores = [s for s in scores if s["event_id"] == late_id]
    assert len(late_scores) == 1 and "late_event" in late_scores[0]["reason_codes"], late_scores
    assert json.loads(late_scores[0]["evidence"])["late"] is True
    assert late_id in {d["event_id"] for d in decisions}
    assert not any(s["event_id"] == late_id and "late_event" not in s["reason_codes"] for s in scores)
    # Every hostile record is in the DLQ once, with its reason, its bytes and where it came from.
    by_topic = {}
    for record in dead:
        by_topic.setdefault(record["source_topic"], []).append(record["reason"])
    for topic in {topic for topic, _ in expected_dead}:
        wanted = sorted(reason for (t, _), reason in expected_dead.items() if t == topic)
        assert sorted(by_topic.get(topic, [])) == wanted, (topic, by_topic.get(topic), wanted)
    assert all(r["detail"] and r["source_offset"] is not None and r["job"] == "vigil-fraud" for r in dead), dead
    assert sum(r["payload"] is not None for r in dead) == len(dead) - 2, "only tombstones have no bytes"
    late_dead = [r for r in dead if r["reason"] == "late_event"]
    assert sorted(r["event_id"] for r in late_dead) == sorted(e["event_id"] for e in late), late_dead
    assert all("behind the watermark" in r["detail"] and r["tenant_id"] == "t4" for r in late_dead), late_dead


def wait_for_dead_letters(kafka, topic, count, timeout_s=120) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        records = [json.loads(m.value()) for m in kafka_io.read(kafka, topic, idle_timeout_s=2)]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(2)
