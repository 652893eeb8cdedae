"""`vigil backtest` end to end on a small hand-made range: the real broker, registry and fraud job
(two bounded MiniCluster runs, at once). A card-testing attack of 5 small attempts alerts under the
rules in force (4 small attempts); the candidate rules ask for 6, so the backtest must report
exactly that alert and its incident removed, nothing added, and every other pattern unchanged (an
impossible-travel leg beside it). An attack written before --from must not be replayed at all."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.fraud_checks import ev, fraud_topics, write_clean, write_labels
from vigil import fraud_rules
from vigil.paths import PROJECT_ROOT
from vigil.rules_cli import publish

MIN = 60_000


def card_testing(card: str, at_ms: int) -> list[dict]:
    """Five attempts of 1 USD from five accounts, then 900 USD: card testing under the default
    rules only (no account has a history for amount anomaly, the card sees 6 attempts: no velocity)."""
    small = [ev("payment_attempt", at_ms + i * 20_000, user=f"u-{card}-{i}", card=card, amount="1.00") for i in range(5)]
    return small + [ev("payment_attempt", at_ms + 130_000, user=f"u-{card}-big", card=card, amount="900.00")]


# Two fraud job runs (2-3 minutes on 2 cores): in `make drills`, beside the other long runs.
@pytest.mark.long
def test_a_stricter_card_testing_rule_removes_exactly_that_alert(kafka, schema_registry, tmp_path):
    names = fraud_topics(kafka)   # stands for production's events.clean, fraud.rules, labels.chargebacks
    t0 = int(time.time() * 1000) - 6 * 3600_000
    publish(kafka, names["rules"], fraud_rules.default_message(t0 - 24 * 3600_000))

    # Recorded before the range: the broker's append time (LogAppendTime) is what --from cuts.
    write_clean(kafka, schema_registry, names["clean"], card_testing("c-before", t0 - 30 * MIN))
    time.sleep(1.5)
    range_start = int(time.time() * 1000)
    time.sleep(0.5)

    attack = card_testing("c-ct", t0)
    travel = [ev("login", t0, user="u-travel"),
              ev("login", t0 + 10 * MIN, user="u-travel", country="US", lat=40.713, lon=-74.006)]
    write_clean(kafka, schema_registry, names["clean"], attack + travel)
    big = attack[-1]
    write_labels(kafka, names["chargebacks"], [
        {"tenant_id": "t1", "event_id": big["event_id"], "event_time": big["event_time"],
         "label_time": big["event_time"] + 10 * MIN, "is_fraud": True, "outcome": "chargeback"}])
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(
        json.dumps({"event_id": e["event_id"], "scenario": scenario, "instance": instance, "tenant_id": "t1",
                    "event_time": e["event_time"]}) + "\n"
        for events, scenario, instance in ((attack, "card_testing", "ct-1"), (travel, "impossible_travel", "it-1"))
        for e in events))
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps({"*": {"card_testing_min_small": 6}}))

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "backtest", "--from", str(range_start), "--candidate-rules", str(candidate),
         "--scenario-labels", str(labels), "--clean-topic", names["clean"], "--rules-topic", names["rules"],
         "--chargebacks-topic", names["chargebacks"], "--bootstrap", kafka, "--schema-registry-url", schema_registry,
         # at once: over a handful of events the runs' start-up is all their time, and overlaps
         "--out", str(out), "--at-once"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout)

    report = json.loads((out / "report.json").read_text())
    rows = report["patterns"]
    assert report["range"]["events"] == len(attack) + len(travel)          # c-before was not replayed
    card = rows["card_testing"]
    assert (card["current"]["hits"], card["candidate"]["hits"], card["added"], card["removed"]) == (1, 0, 0, 1)
    assert (card["incidents_removed"], card["incidents_added"]) == (1, 0)
    assert report["removed_hits"] == [{"tenant_id": "t1", "event_id": big["event_id"], "pattern": "card_testing",
                                       "entity_type": "card", "entity_id": "c-ct"}]
    assert report["added_hits"] == []
    # the attack is caught, rightly, by the current rules only; confirmed by its chargeback
    assert card["current"]["precision_scenarios"] == card["current"]["recall_scenarios"] == 1.0
    assert card["candidate"]["recall_scenarios"] == 0.0
    assert card["current"]["precision_chargebacks"] == 1.0 and report["truth"]["chargebacks"] == 1
    # nothing else changed: the travel leg alerts in both runs
    travel_row = rows["impossible_travel"]
    assert travel_row["current"]["hits"] == travel_row["candidate"]["hits"] == 1
    for pattern, row in rows.items():
        if pattern not in ("card_testing", "all alerts"):
            assert (row["added"], row["removed"], row["incidents_added"], row["incidents_removed"],
                    row["incidents_changed"]) == (0, 0, 0, 0, 0), pattern
            assert row["current"]["hits"] == row["candidate"]["hits"], pattern
    everything = rows["all alerts"]
    assert (everything["added"], everything["removed"]) == (0, 1)
    assert "card_testing" in result.stdout and (out / "chart.png").stat().st_size > 0
