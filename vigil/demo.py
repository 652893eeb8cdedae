"""`make demo` / `vigil demo`: the whole platform on local defaults, with a readable summary.

Starts what is not running yet (Kafka, the schema registry, PostgreSQL, the Flink standalone
cluster with its SQL Gateway), submits the ingest, fraud detection and analytics jobs to the
cluster (unbounded; jobs already running are kept), generates `duration_s` of traffic with fraud
scenarios, bad input and a mix of event schema v1 and v2, then waits (bounded) until each job has
committed what the traffic produced, and prints: the ingest accounting (events in, clean, rejected
by reason, every input accounted for exactly once), the fraud alerts by pattern with one alert
explained, the analytics answers for the busiest tenant through the HTTP API (started in the
background, with a key the demo creates), and the dashboard URL. Everything keeps running;
`make down` stops it. What is printed is built in vigil/demo_report.py, the cluster, jobs and
API calls are in vigil/demo_stack.py.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone

from vigil import demo_stack, fraud_rules, kafka_broker, kafka_io, rules_cli, topics
from vigil.demo_report import Summary, render_analytics, render_fraud, render_ingest, render_next
from vigil.paths import PROJECT_ROOT, state_dir
from vigil.registry import service as registry_service
from vigil.registry.catalog import value_decoder

JOBS = 3                  # ingest, fraud_detection, analytics: one slot each
INGEST_WAIT_S = 240       # bounds, after the generator, for each job's results
FRAUD_WAIT_S = 300
ANALYTICS_WAIT_S = 180


def summarise(bootstrap: str, raw_start: dict, raw_end: dict, clean_start: dict, dlq_start: dict) -> Summary:
    summary = Summary(raw=sum(raw_end[p] - raw_start.get(p, 0) for p in raw_end))
    decode_clean = value_decoder(registry_service.registry_url())  # avro-confluent
    for message in kafka_io.read(bootstrap, topics.CLEAN, clean_start):
        summary.add_clean(decode_clean(message.value()))
    for message in kafka_io.read(bootstrap, topics.DLQ, dlq_start):
        summary.add_rejected(json.loads(message.value()))
    return summary


def read_avro(bootstrap: str, topic: str, start: dict) -> list[dict]:
    decode = value_decoder(registry_service.registry_url())
    return [decode(m.value()) for m in kafka_io.read(bootstrap, topic, start)]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_services(bootstrap: str) -> None:
    from vigil.serving import postgres

    kafka_broker.start()
    topics.ensure_topics(bootstrap)
    registry_service.start(bootstrap)
    postgres.ensure_running()
    demo_stack.ensure_cluster(JOBS)
    if not sum(kafka_io.end_offsets(bootstrap, topics.RULES).values()):
        # The fraud job applies the rules of fraud.rules: the defaults for everyone, from the start.
        rules_cli.publish(bootstrap, topics.RULES, fraud_rules.default_message(0))
        print("rules: published the defaults row (vigil rules show)")


def run(duration_s: float = 60.0, rate: float = 1000.0, bad_fraction: float = 0.02, seed: int | None = None,
        v2_fraction: float = 0.3) -> int:
    began = time.monotonic()
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    print("\n[1/6] starting Kafka, the schema registry, PostgreSQL and the Flink cluster (if not running)", flush=True)
    start_services(bootstrap)
    starts = {t: kafka_io.end_offsets(bootstrap, t) for t in (topics.RAW, topics.CLEAN, topics.DLQ, topics.ALERTS,
                                                                topics.INCIDENTS)}
    run_start_ms = int(time.time() * 1000)

    print("\n[2/6] submitting the ingest, fraud detection and analytics jobs to the cluster "
          "(in the background, while the generator runs)", flush=True)
    flags = {"ingest": ["--start-offsets", kafka_io.format_offsets(starts[topics.RAW])],
             "fraud_detection": ["--start-time", str(run_start_ms)],
             "analytics": []}
    submitted: dict = {}
    submitting = threading.Thread(target=lambda: submitted.update(_submit(flags)))
    submitting.start()

    seed = seed if seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    labels_file = state_dir() / f"labels-{seed}.jsonl"
    print(f"\n[3/6] generating {duration_s:.0f}s of traffic at {rate:,.0f} events/s (seed {seed})", flush=True)
    generate = [sys.executable, "-m", "vigil.cli", "generate", "--duration", str(duration_s), "--rate", str(rate),
                "--bad-fraction", str(bad_fraction), "--seed", str(seed), "--labels-file", str(labels_file),
                "--v2-fraction", str(v2_fraction)]
    generated = subprocess.call(generate, cwd=PROJECT_ROOT)
    submitting.join()
    if "error" in submitted:
        print(f"demo: submitting the jobs failed:\n{submitted['error']}", file=sys.stderr)
        return 1
    if generated != 0:
        print("demo: the generator failed", file=sys.stderr)
        return 1
    code = report(bootstrap, starts, kafka_io.end_offsets(bootstrap, topics.RAW), run_start_ms, str(labels_file),
                  list(submitted["ids"].values()))
    print(f"\ndemo: {time.monotonic() - began:.0f}s", flush=True)
    return code


def report(bootstrap: str, starts: dict, raw_end: dict, run_start_ms: int, labels_file: str,
           job_ids: list[str]) -> int:
    """Steps 4-6: wait (bounded) for each job's results of this run, print them. `starts`: the
    end offsets of the topics before the run; exit code 1 if ingest did not account for every
    input exactly once or no alert came."""
    print(f"\n[4/6] waiting for the ingest job to commit events.raw up to the generator's end "
          f"(at most {INGEST_WAIT_S}s)", flush=True)
    demo_stack.wait_for(lambda: demo_stack.caught_up(bootstrap, "vigil-ingest", topics.RAW, starts[topics.RAW],
                                                     raw_end), INGEST_WAIT_S, "the ingest job", job_ids)
    summary = summarise(bootstrap, starts[topics.RAW], raw_end, starts[topics.CLEAN], starts[topics.DLQ])
    labels = Counter(json.loads(line)["scenario"] for line in open(labels_file))
    print(render_ingest(summary, labels), flush=True)
    tenant = summary.busiest_tenant
    api_url, key = _start_api(tenant)

    clean_end = kafka_io.end_offsets(bootstrap, topics.CLEAN)
    print(f"\n[5/6] waiting for the fraud job to decide every clean event of this run (at most {FRAUD_WAIT_S}s)",
          flush=True)
    demo_stack.wait_for(lambda: demo_stack.caught_up(bootstrap, "vigil-fraud", topics.CLEAN, starts[topics.CLEAN],
                                                     clean_end), FRAUD_WAIT_S, "the fraud job", job_ids)
    alerts = read_avro(bootstrap, topics.ALERTS, starts[topics.ALERTS])
    incidents = {i.get("incident_id") for i in read_avro(bootstrap, topics.INCIDENTS, starts[topics.INCIDENTS])}
    print(render_fraud(alerts, labels, len(incidents)), flush=True)

    alerts_end = kafka_io.end_offsets(bootstrap, topics.ALERTS)
    since = _iso(run_start_ms - 60_000)
    print(f"\n[6/6] waiting for the analytics job to write this run's windows and alerts to PostgreSQL "
          f"(at most {ANALYTICS_WAIT_S}s)", flush=True)

    def analytics_done() -> bool:
        if not (demo_stack.caught_up(bootstrap, "vigil-analytics", topics.CLEAN, starts[topics.CLEAN], clean_end)
                and demo_stack.caught_up(bootstrap, "vigil-analytics", topics.ALERTS, starts[topics.ALERTS],
                                         alerts_end)):
            return False
        answers = demo_stack.analytics_answers(api_url, key, since)
        return bool((answers["revenue"].get("totals") or {}).get("orders"))

    demo_stack.wait_for(analytics_done, ANALYTICS_WAIT_S, "the analytics job", job_ids)
    time.sleep(3)  # the JDBC sink's last flush after the checkpoint the offsets were committed with
    print(render_analytics(tenant, demo_stack.analytics_answers(api_url, key, since), api_url))
    print(render_next(api_url, key, tenant, labels_file, demo_stack.flink_cluster.ClusterSettings().rest_url))
    return 0 if summary.accounted_once and alerts else 1


def _submit(flags: dict) -> dict:
    try:
        return {"ids": demo_stack.submit_missing(flags)}
    except Exception as error:
        return {"error": str(error)}


def _start_api(tenant: str) -> tuple[str, str]:
    """The API in the background, and a new key for `tenant` (the key is shown once, here)."""
    from vigil.api import server
    from vigil.api.settings import ApiSettings
    from vigil.serving import credentials, keys, postgres

    settings = ApiSettings()
    server.start_background(settings)
    _, key = keys.create(postgres.dsn(credentials.ADMIN, settings.database), tenant, label="vigil demo")
    return settings.url, key
