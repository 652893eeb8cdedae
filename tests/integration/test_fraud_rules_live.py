"""A threshold changed while the fraud job runs: no restart, and the next attack is judged by
the new rule (the pattern tests change one by effective time; this one does it live)."""

from __future__ import annotations

import json
import subprocess
import time

from tests.fraud_checks import ev, fraud_job_command, fraud_topics, set_rules, write_clean
from udfs import fraud_rules
from vigil import procs
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
        second = attack("c-second", t0 + 20 * MIN) + attack("c-control", t0 + 20 * MIN, tenant="t4")
        write_clean(kafka, schema_registry, names["clean"], second, tail_at_ms=t0 + 40 * MIN)
        alerts = wait_for_alerts(kafka, schema_registry, names["alerts"],
                                 lambda found: "c-control" in card_testing_cards(found))
        assert job.poll() is None, "the job stopped"
        # The low-latency path decided every payment on arrival, without waiting for watermarks.
        payments = {e["event_id"] for e in first + second if e["event_type"] == "payment_attempt"}
        decisions = wait_for_alerts(kafka, schema_registry, names["decisions"],
                                    lambda found: payments <= {d["event_id"] for d in found})
    finally:
        procs.kill_tree(job.pid)
        job.wait(timeout=30)
        log.close()
    assert card_testing_cards(alerts) == {"c-first", "c-control"}, card_testing_cards(alerts)
    assert all(alert["rules_effective_from"] is not None for alert in alerts)
    assert payments <= {d["event_id"] for d in decisions}
    assert all(d["decision_latency_ms"] is not None and d["decision_latency_ms"] >= 0 for d in decisions)
