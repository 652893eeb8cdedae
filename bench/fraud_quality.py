"""Benchmark: detection quality of the fraud job on generated traffic with labelled scenarios.

Prepares --events events (fixed --seed, fraud scenarios injected, chargeback labels; bench/fraud_setup.py)
in fresh topics, runs the fraud job over them (bounded, local MiniCluster, default rules, fresh model
snapshots) and compares its outputs with the generator's ground truth:
- pattern hits (every pattern named in an alert's evidence, for the alert's triggering event):
  per pattern, precision (the event belongs to the scenario the pattern is meant for), precision
  against any fraud scenario, recall (scenario instances with at least one hit of the pattern;
  instances started in the last hour of event time, which the end of the run may have cut short,
  are left out), and hits on ordinary shopping sessions;
- the models, from fraud.scores (one record per payment attempt; positive = a scenario event):
  ROC AUC and PR AUC (average precision) of the anomaly, supervised and combined scores, over all
  payments and over the second half of event time (the supervised model has learned from chargebacks);
- incidents (fraud.incidents, the last version of each): per pattern, the incidents holding it and
  their precision (the incident's alerts are on an attack's events: what an analyst reading it
  would call a true case); per scenario, the instances with an incident and the incidents per
  instance (one is the ideal: more means an analyst reads one attack several times);
- alerts: how many carry model reason codes, precision of the alerts raised by the models alone;
- detection latency of the alerts (a backlog run: not live latency).

--mix diverse runs the same on a differently parameterised world (vigil/generator/mixes.py: other
tenant sizes and currencies, volatile and steady spenders, families sharing a device, frequent
travellers), so that the patterns are not judged on the traffic they were written against.

    .venv/bin/python bench/fraud_quality.py [--events 200000] [--seed 42] [--fraud-fraction 0.02]
                                            [--mix standard|diverse]
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections import Counter, defaultdict
from itertools import groupby
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fraud_setup import prepare, run  # noqa: E402
from jobs import fraud_config  # noqa: E402
from vigil.backtest_report import TARGET, latest_incidents, percentile  # noqa: E402
from vigil.generator.mixes import MIXES  # noqa: E402
from vigil.registry.catalog import read_values  # noqa: E402

# The longest scenario script (refund abuse: purchases, refunds, chargeback) spans < 1 h.
CUTOFF_MS = 3600_000
MODEL_SCORES = ("anomaly_score", "supervised_score", "score")


def hits_from_alerts(alerts: list[dict]) -> set[tuple[str, str, str, str, tuple]]:
    """(pattern, entity_type, entity_id, event_id, events) of every pattern hit in the alerts'
    evidence; `events` are the events the hit is made of: the triggering one and those its evidence
    names (impossible travel's departure, card testing's first attempt)."""
    hits = set()
    for a in alerts:
        for p in json.loads(a["evidence"])["patterns"]:
            named = [v for k, v in (p["evidence"] or {}).items() if k.endswith("event_id") and isinstance(v, str)]
            hits.add((p["pattern"], p["entity_type"], p["entity_id"], a["event_id"], (a["event_id"], *named)))
    return hits


def scenario_of_hit(hit: tuple, scenario_of: dict) -> tuple | None:
    """The scenario instance a hit is about: that of the first of its events that has one. A
    genuine user seen at home minutes after an attacker logged in abroad is impossible travel
    about that attack, though the user's own event is not the attacker's."""
    return next((scenario_of[e] for e in hit[4] if e in scenario_of), None)


def pattern_table(hits: set, scenario_of: dict, instances: dict, complete: set) -> None:
    print(f"{'pattern':<18} {'hits':>7} {'precision':>9} {'any fraud':>9} {'recall':>7}  "
          f"{'on ordinary sessions':>20}  instances caught / complete")
    for pattern in sorted({h[0] for h in hits} | set(TARGET)):
        found = [scenario_of_hit(h, scenario_of) for h in hits if h[0] == pattern]
        target = TARGET.get(pattern)
        exact = sum(1 for s in found if s and s[0] == target)
        any_fraud = sum(1 for s in found if s)
        caught = {s[1] for s in found if s and s[0] == target} & complete
        wanted = instances.get(target, set()) & complete
        precision = f"{exact / len(found):.3f}" if found and target else "-"
        recall = f"{len(caught) / len(wanted):.3f}" if wanted else "-"
        print(f"{pattern:<18} {len(found):>7,} {precision:>9} {(any_fraud / len(found) if found else 0):>9.3f} "
              f"{recall:>7}  {len(found) - any_fraud:>20,}  {len(caught)} / {len(wanted)}")
    about = [(h, scenario_of_hit(h, scenario_of)) for h in hits]
    other = Counter(s[0] for h, s in about if s and s[0] != TARGET.get(h[0]))
    if other:
        print("hits on another pattern's scenario:", dict(other.most_common()))


def incident_tables(incidents: list[dict], alerts: list[dict], hits: set, scenario_of: dict, instances: dict,
                    complete: set) -> None:
    """Incident-level precision per pattern and incidents per attack instance (see the module doc)."""
    attacks_of_alert = defaultdict(set)   # alert id -> the scenario instances its hits are about
    by_event = {a["event_id"]: a["alert_id"] for a in alerts}
    for hit in hits:
        about = scenario_of_hit(hit, scenario_of)
        if about:
            attacks_of_alert[by_event[hit[3]]].add(about[1])
    for a in alerts:
        if a["event_id"] in scenario_of:
            attacks_of_alert[a["alert_id"]].add(scenario_of[a["event_id"]][1])
    attacks_of = {i["incident_id"]: set().union(*(attacks_of_alert.get(a, set()) for a in i["alert_ids"]))
                  for i in incidents}
    print(f"{'pattern':<18} {'incidents':>9} {'on attacks':>10} {'precision':>9}")
    for pattern in sorted({p for i in incidents for p in i["patterns"]} | set(TARGET)):
        holding = [i for i in incidents if pattern in i["patterns"]]
        true = sum(1 for i in holding if attacks_of[i["incident_id"]])
        print(f"{pattern:<18} {len(holding):>9,} {true:>10,} "
              f"{(f'{true / len(holding):.3f}' if holding else '-'):>9}")
    per_instance: dict[str, set] = defaultdict(set)
    for incident_id, attacked in attacks_of.items():
        for instance in attacked:
            per_instance[instance].add(incident_id)
    print(f"\n{'scenario':<18} {'complete':>8} {'with an incident':>16} {'incidents per instance':>22}")
    counts_all = []
    for scenario in sorted(instances):
        wanted = instances[scenario] & complete
        counts = [len(per_instance[i]) for i in wanted if per_instance.get(i)]
        counts_all += counts
        print(f"{scenario:<18} {len(wanted):>8,} {len(counts):>16,} "
              f"{(f'{sum(counts) / len(counts):.2f}' if counts else '-'):>22}")
    if counts_all:
        print(f"{'all attacks':<18} {len(set().union(*instances.values()) & complete):>8,} {len(counts_all):>16,} "
              f"{sum(counts_all) / len(counts_all):>22.2f}  (max {max(counts_all)})")


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """Probability that a random positive outscores a random negative (ties count half): rank sum."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks, i = [0.0] * len(scores), 0
    for _, group in groupby(order, key=scores.__getitem__):
        group = list(group)
        for j in group:
            ranks[j] = i + (len(group) + 1) / 2  # average of the 1-based ranks i+1 .. i+len
        i += len(group)
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(scores: list[float], labels: list[bool]) -> float:
    """Mean precision at each positive in descending-score order (tied scores are one threshold)."""
    order = sorted(range(len(scores)), key=lambda j: -scores[j])
    seen = true = 0
    total = 0.0
    for _, group in groupby(order, key=scores.__getitem__):
        group = list(group)
        positives = sum(labels[j] for j in group)
        seen, true = seen + len(group), true + positives
        total += positives * true / seen
    return total / max(1, sum(labels))


def model_table(scores: list[dict], fraud_ids: set) -> None:
    times = [s["event_time"] for s in scores]
    middle = min(times) + (max(times) - min(times)) / 2
    halves = {"all payments": scores, "2nd half of event time": [s for s in scores if s["event_time"] >= middle]}
    for name, rows in halves.items():
        positives = sum(1 for s in rows if s["event_id"] in fraud_ids)
        print(f"{name}: {len(rows):,} payments, {positives:,} fraud (base rate {positives / len(rows):.4f})")
    header = [f"{half} {metric}" for half in ("all", "2nd half") for metric in ("ROC AUC", "PR AUC")]
    print(f"{'score':<18} " + " ".join(f"{h:>17}" for h in header))
    for column in MODEL_SCORES:
        cells = []
        for rows in halves.values():
            rows = [s for s in rows if s[column] is not None]
            y = [s["event_id"] in fraud_ids for s in rows]
            x = [s[column] for s in rows]
            ok = 0 < sum(y) < len(y)
            cells += [f"{roc_auc(x, y):.3f}" if ok else "-", f"{average_precision(x, y):.3f}" if ok else "-"]
        print(f"{column:<18} " + " ".join(f"{c:>17}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fraud-fraction", type=float, default=0.02)
    parser.add_argument("--mix", choices=sorted(MIXES), default="standard", help="traffic mix (vigil/generator/mixes.py)")
    args = parser.parse_args()

    # 20 events per second of event time: 200,000 events span about 2.8 hours, so that most
    # scenario instances (minutes to an hour long) complete inside the run.
    prep = prepare(args.events, args.seed, rate=20.0, fraud_fraction=args.fraud_fraction, prefix="quality",
                   mix=args.mix)
    snapshots = f"/tmp/{prep.names['prefix']}-models-{uuid.uuid4().hex[:6]}"
    fraud_s = run(fraud_config.command(prep.names, "--bounded", "--labels-idle-timeout", "30 s",
                                       "--model-snapshot-dir", snapshots), "fraud job")
    alerts = read_values(prep.bootstrap, prep.registry, prep.names["alerts"])
    scores = read_values(prep.bootstrap, prep.registry, prep.names["scores"])
    incidents = latest_incidents(read_values(prep.bootstrap, prep.registry, prep.names["incidents"]))

    labels = [json.loads(line) for line in prep.labels_file.read_text().splitlines()]
    scenario_of = {label["event_id"]: (label["scenario"], label["instance"]) for label in labels}
    last_ms = max(label["event_time"] for label in labels)
    instance_start: dict[str, int] = {}
    instances: dict[str, set] = defaultdict(set)
    for label in labels:
        instance_start[label["instance"]] = min(instance_start.get(label["instance"], label["event_time"]),
                                                label["event_time"])
        instances[label["scenario"]].add(label["instance"])
    complete = {i for i, t in instance_start.items() if t < last_ms - CUTOFF_MS}
    hits = hits_from_alerts(alerts)

    print(f"{args.events:,} events ({args.mix} mix, seed {args.seed}, fraud fraction {args.fraud_fraction}): "
          f"{len(labels):,} labelled fraud events in {len(instance_start):,} scenario instances "
          f"({len(complete):,} complete); ingest {prep.ingest_s:.0f}s, fraud job wall time {fraud_s:.0f}s "
          f"(bounded runs, start-up included)")
    print(f"\nPattern hits: {len(alerts):,} alerts -> {len(hits):,} hits (pattern, entity, triggering event)")
    pattern_table(hits, scenario_of, instances, complete)

    print(f"\nIncidents: {len(incidents):,} (fraud.incidents); an incident is on an attack when one of its "
          "alerts is about a scenario's event (triggered by it or naming it); 'model': alerts by the models alone")
    incident_tables(list(incidents.values()), alerts, hits, scenario_of, instances, complete)

    labels_seen = max((json.loads(s["evidence"])["labels_seen"] for s in scores), default=0)
    print(f"\nModels (fraud.scores; positive = a scenario event); chargeback labels learned: {labels_seen:,}")
    model_table(scores, set(scenario_of))

    with_model = [a for a in alerts if any(r.startswith("model_") for r in a["reason_codes"])]
    model_only = [a for a in with_model if all(r.startswith("model_") for r in a["reason_codes"])]
    true_model_only = sum(1 for a in model_only if a["event_id"] in scenario_of)
    print(f"\nAlerts: {len(alerts):,}; with model reason codes {len(with_model):,}; model-only "
          f"{len(model_only):,}, precision "
          + (f"{true_model_only / len(model_only):.3f}" if model_only else "-"))

    latencies = [a["detection_latency_ms"] for a in alerts if a["detection_latency_ms"] is not None]
    if latencies:
        print(f"detection_latency_ms p50 {percentile(latencies, 0.5):,.0f}, p99 {percentile(latencies, 0.99):,.0f} "
              "(backlog run: the job catches up on pre-written events, so this is not live latency "
              "(see bench/fraud_throughput.py))")


if __name__ == "__main__":
    main()
