"""`make demo` / `vigil demo`: the whole platform on local defaults, with a readable summary.

Starts Kafka and the schema registry (if needed), generates `duration_s` of traffic with fraud
scenarios, bad input and a mix of event schema v1 and v2,
runs the ingest job (bounded: it stops at the offsets that exist when it starts), then reads
what it committed and prints: events in, clean, rejected by reason, busiest tenants, and whether
every input is accounted for exactly once.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from vigil import kafka_broker, kafka_io, topics
from vigil.paths import PROJECT_ROOT, state_dir
from vigil.registry import service as registry_service
from vigil.registry.catalog import value_decoder


@dataclass
class Summary:
    raw: int = 0
    clean: int = 0
    rejected: Counter = field(default_factory=Counter)
    clean_by_tenant: Counter = field(default_factory=Counter)
    event_types: Counter = field(default_factory=Counter)
    schema_versions: Counter = field(default_factory=Counter)
    payment_methods: Counter = field(default_factory=Counter)
    positions: Counter = field(default_factory=Counter)  # (partition, offset) of raw -> times seen

    def add_clean(self, value: dict) -> None:
        self.clean += 1
        self.clean_by_tenant[value["tenant_id"]] += 1
        self.event_types[value["event_type"]] += 1
        self.schema_versions[value["schema_version"]] += 1
        if value.get("payment_method"):
            self.payment_methods[value["payment_method"]] += 1
        self.positions[(value["source_partition"], value["source_offset"])] += 1

    def add_rejected(self, value: dict) -> None:
        self.rejected[value["reason"]] += 1
        self.positions[(value["source_partition"], value["source_offset"])] += 1

    @property
    def accounted_once(self) -> bool:
        return len(self.positions) == self.raw and all(n == 1 for n in self.positions.values())


def summarise(bootstrap: str, raw_start: dict, raw_end: dict, clean_start: dict, dlq_start: dict) -> Summary:
    summary = Summary(raw=sum(raw_end[p] - raw_start.get(p, 0) for p in raw_end))
    decode_clean = value_decoder(registry_service.registry_url())  # avro-confluent
    for message in kafka_io.read(bootstrap, topics.CLEAN, clean_start):
        summary.add_clean(decode_clean(message.value()))
    for message in kafka_io.read(bootstrap, topics.DLQ, dlq_start):
        summary.add_rejected(json.loads(message.value()))
    return summary


def render(summary: Summary, labels: Counter) -> str:
    lines = [
        "", "=" * 72, "Vigil demo: ingest summary (read back with isolation.level=read_committed)", "=" * 72,
        f"events in (events.raw)     {summary.raw:>10,}",
        f"clean (events.clean)       {summary.clean:>10,}",
        f"rejected (events.dlq)      {sum(summary.rejected.values()):>10,}",
        f"every input accounted for exactly once: {'YES' if summary.accounted_once else 'NO'}",
        "", "rejected by reason:",
    ]
    lines += [f"  {reason:<24} {n:>8,}" for reason, n in summary.rejected.most_common()]
    lines += ["", "busiest tenants (clean events):"]
    lines += [f"  {tenant:<24} {n:>8,}" for tenant, n in summary.clean_by_tenant.most_common(5)]
    lines += ["", "clean events by type:"]
    lines += [f"  {kind:<24} {n:>8,}" for kind, n in summary.event_types.most_common()]
    lines += ["", "clean events by the event schema version their producer wrote (v1 read as v2):"]
    lines += [f"  v{version:<23} {n:>8,}" for version, n in sorted(summary.schema_versions.items())]
    lines += ["  payment_method (a v2 field): " + ", ".join(f"{k} {n:,}" for k, n in summary.payment_methods.most_common())]
    lines += ["", "labelled fraud-scenario events generated (ground truth for the fraud job):"]
    lines += [f"  {scenario:<24} {n:>8,}" for scenario, n in labels.most_common()]
    return "\n".join(lines)


def run(duration_s: float = 60.0, rate: float = 2000.0, bad_fraction: float = 0.02, seed: int | None = None,
        v2_fraction: float = 0.3) -> int:
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    kafka_broker.start()
    topics.ensure_topics(bootstrap)
    registry_service.start(bootstrap)
    raw_start = kafka_io.end_offsets(bootstrap, topics.RAW)
    clean_start = kafka_io.end_offsets(bootstrap, topics.CLEAN)
    dlq_start = kafka_io.end_offsets(bootstrap, topics.DLQ)

    seed = seed if seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    labels_file = state_dir() / f"labels-{seed}.jsonl"
    python = sys.executable
    print(f"\n[1/3] generating {duration_s:.0f}s of traffic at {rate:,.0f} events/s (seed {seed})", flush=True)
    generate = [python, "-m", "vigil.cli", "generate", "--duration", str(duration_s), "--rate", str(rate),
                "--bad-fraction", str(bad_fraction), "--seed", str(seed), "--labels-file", str(labels_file),
                "--v2-fraction", str(v2_fraction)]
    if subprocess.call(generate, cwd=PROJECT_ROOT) != 0:
        print("demo: the generator failed", file=sys.stderr)
        return 1
    raw_end = kafka_io.end_offsets(bootstrap, topics.RAW)

    job_log = state_dir() / "demo-ingest.log"
    print(f"\n[2/3] running the ingest job on a local MiniCluster until it has read everything "
          f"(log: {job_log})", flush=True)
    started = time.monotonic()
    with open(job_log, "w") as log:
        # Exactly the range this demo produced: a fresh job instance (no checkpoint to resume
        # from) must not re-read the tail of an earlier run from the group's committed offsets.
        code = subprocess.call([python, "-m", "jobs.ingest", "--start-offsets", kafka_io.format_offsets(raw_start),
                                "--stop-offsets", kafka_io.format_offsets(raw_end)], cwd=PROJECT_ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        print(f"demo: the ingest job failed (exit {code}); last lines of {job_log}:", file=sys.stderr)
        print("".join(open(job_log).readlines()[-30:]), file=sys.stderr)
        return 1
    print(f"      ingest finished in {time.monotonic() - started:.0f}s", flush=True)

    print("\n[3/3] reading back events.clean and events.dlq", flush=True)
    summary = summarise(bootstrap, raw_start, raw_end, clean_start, dlq_start)
    labels = Counter(json.loads(line)["scenario"] for line in open(labels_file))
    print(render(summary, labels))
    print(f"""
Look further:
  .venv/bin/vigil infra status                     broker and schema registry status
  .venv/bin/vigil schema list                      registered subjects, versions, ids
  .venv/bin/python -m vigil.peek events.dlq 5     a few dead-letter records with their reasons
  {labels_file}  ground truth
  make cluster-up && .venv/bin/vigil submit ingest run the job on the local Flink cluster (web UI :8081)
Kafka and the schema registry are still running (data in .vigil/kafka). Stop everything with: make down
""")
    return 0 if summary.accounted_once else 1
