"""Benchmark: detection quality of the fraud job on generated traffic with labelled scenarios.

Generates --events events (fixed --seed, fraud scenarios injected, no bad input) into fresh
topics, runs the ingest job and then the fraud job over them (both bounded, local MiniCluster,
default rules), and compares the alerts with the generator's ground truth:
- per pattern: alerts, precision (the triggering event belongs to the scenario the pattern is
  meant for), precision against any fraud scenario, and recall (scenario instances with at
  least one alert of the pattern; instances started in the last hour of event time, which the
  end of the run may have cut short, are left out);
- false alerts on ordinary shopping sessions, per pattern.

    .venv/bin/python bench/fraud_quality.py [--events 200000] [--seed 42] [--fraud-fraction 0.02]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.ingest import format_offsets  # noqa: E402
from udfs import fraud_rules  # noqa: E402
from vigil import kafka_broker, kafka_io, topics  # noqa: E402
from vigil.generator.producer import produce  # noqa: E402
from vigil.generator.stream import EventStream, StreamSettings  # noqa: E402
from vigil.generator.wire import EventWriter  # noqa: E402
from vigil.paths import PROJECT_ROOT  # noqa: E402
from vigil.registry import service as registry_service  # noqa: E402
from vigil.registry.catalog import read_values  # noqa: E402
from vigil.rules_cli import publish  # noqa: E402

# Which scenario each pattern is meant to catch (amount_anomaly has no scenario of its own).
TARGET = {"card_testing": "card_testing", "account_takeover": "account_takeover",
          "impossible_travel": "impossible_travel", "velocity": "velocity_burst",
          "shared_device": "shared_device", "refund_abuse": "refund_abuse"}
# The longest scenario script (refund abuse: purchases, refunds, chargeback) spans < 1 h.
CUTOFF_MS = 3600_000
# Events per second of event time: 200,000 events span about 2.8 hours, so that most scenario
# instances (minutes to an hour long) complete inside the run.
RATE = 20.0


def run(cmd: list[str], what: str) -> float:
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fraud-fraction", type=float, default=0.02)
    args = parser.parse_args()

    kafka_broker.start(log=lambda *_: None)
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    registry_service.start(bootstrap, log=lambda *_: None)
    url = registry_service.registry_url()
    prefix = f"quality-{uuid.uuid4().hex[:6]}"
    names = topics.create_ingest_topics(bootstrap, prefix)
    fraud_names = topics.create_fraud_topics(bootstrap, prefix)
    rules_topic, alerts_topic = fraud_names["rules"], fraud_names["alerts"]

    # Event time ends about now: the run spans events/rate seconds of event time.
    rate = RATE
    start_ms = int(time.time() * 1000) - int(args.events / rate * 1000)
    labels_file = Path(f"/tmp/{prefix}-labels.jsonl")
    stream = EventStream(StreamSettings(seed=args.seed, start_ms=start_ms, rate=rate,
                                        fraud_fraction=args.fraud_fraction),
                         EventWriter.registered(url, names["raw"], with_v2=False))
    stats = produce(stream.records(), bootstrap, rate, events=args.events, pace=False, topic=names["raw"],
                    labels_file=labels_file, progress_every_s=1e9)
    assert stats.failed == 0, stats.first_error
    end = kafka_io.end_offsets(bootstrap, names["raw"])
    ingest_s = run([sys.executable, "-m", "jobs.ingest", "--raw-topic", names["raw"], "--clean-topic", names["clean"],
                    "--dlq-topic", names["dlq"], "--transactional-id-prefix", prefix, "--group-id", prefix,
                    "--start-offsets", format_offsets({p: 0 for p in end}), "--stop-offsets", format_offsets(end)],
                   "ingest")
    publish(bootstrap, rules_topic, fraud_rules.default_message(start_ms - 24 * 3600_000))
    fraud_s = run([sys.executable, "-m", "jobs.fraud_detection", "--bounded", "--clean-topic", names["clean"],
                   "--rules-topic", rules_topic, "--alerts-topic", alerts_topic, "--group-id", prefix,
                   "--transactional-id-prefix", prefix], "fraud job")
    alerts = read_values(bootstrap, url, alerts_topic)

    labels = [json.loads(line) for line in labels_file.read_text().splitlines()]
    scenario_of = {label["event_id"]: (label["scenario"], label["instance"]) for label in labels}
    last_ms = max(label["event_time"] for label in labels)
    instance_start: dict[str, int] = {}
    instances: dict[str, set] = defaultdict(set)
    for label in labels:
        instance_start[label["instance"]] = min(instance_start.get(label["instance"], label["event_time"]),
                                                label["event_time"])
        instances[label["scenario"]].add(label["instance"])
    complete = {i for i, t in instance_start.items() if t < last_ms - CUTOFF_MS}

    print(f"{args.events:,} events (seed {args.seed}, fraud fraction {args.fraud_fraction}): "
          f"{len(labels):,} labelled fraud events in {len(instance_start):,} scenario instances "
          f"({len(complete):,} complete); ingest {ingest_s:.0f}s, fraud job {fraud_s:.0f}s (bounded runs, "
          f"start-up included); {len(alerts):,} alerts")
    print(f"{'pattern':<18} {'alerts':>7} {'precision':>9} {'any fraud':>9} {'recall':>7}  "
          f"{'on ordinary sessions':>20}  instances caught / complete")
    for pattern in sorted({a["fraud_pattern"] for a in alerts} | set(TARGET)):
        mine = [a for a in alerts if a["fraud_pattern"] == pattern]
        hits = [scenario_of.get(a["event_id"]) for a in mine]
        target = TARGET.get(pattern)
        exact = sum(1 for h in hits if h and h[0] == target)
        any_fraud = sum(1 for h in hits if h)
        caught = {h[1] for h in hits if h and h[0] == target} & complete
        wanted = instances.get(target, set()) & complete
        precision = f"{exact / len(mine):.3f}" if mine and target else "-"
        recall = f"{len(caught) / len(wanted):.3f}" if wanted else "-"
        print(f"{pattern:<18} {len(mine):>7,} {precision:>9} {(any_fraud / len(mine) if mine else 0):>9.3f} "
              f"{recall:>7}  {len(mine) - any_fraud:>20,}  {len(caught)} / {len(wanted)}")
    other = Counter(scenario_of[a["event_id"]][0] for a in alerts if a["event_id"] in scenario_of
                    and scenario_of[a["event_id"]][0] != TARGET.get(a["fraud_pattern"]))
    if other:
        print("alerts on another pattern's scenario:", dict(other.most_common()))


if __name__ == "__main__":
    main()
