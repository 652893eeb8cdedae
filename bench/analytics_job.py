"""Benchmark: the analytics job's speed on a skewed stream, with and without its hot-key options.

Writes --events generated clean events (event time at --rate events/s, Zipf-skewed tenants and
merchants: the busiest merchant holds ~15 % of the traffic, as in `vigil generate`) into a fresh
events.clean-like topic. Then, for each variant and --repeat times, runs the whole analytics job
(every recipe, a MiniCluster in its own process, writing a fresh PostgreSQL database) over the
topic as a backlog, unbounded as in production, and samples every second the offsets it has
committed (on each checkpoint, every second here) and the CPU time of its processes. The rate is
taken between 10 % and 90 % of the events, so start-up is left out, and so is the end of input
(a bounded run would fire every remaining step of every CUMULATE window at once: ADR 0011).
Variants (jobs/analytics_config.py), each optionally suffixed `:pN` (parallelism N, one
MiniCluster) and `:rocksdb` or `:hashmap` (state backend; default the job's, hashmap):
  two_phase  the job as it runs: local-global window aggregation
  one_phase  --agg-phase ONE_PHASE: every row shuffled to its key
  split      two phases and --split-distinct: distinct users counted per key and bucket first
Prints a table; docs/benchmarks.md ("Analytics job") quotes it.

    .venv/bin/python bench/analytics_job.py [--events 150000] [--rate 1000] [--repeat 1]
        [--variants two_phase,one_phase,two_phase:p2,one_phase:p2,two_phase:rocksdb,split:rocksdb]
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs import analytics_config  # noqa: E402
from vigil import kafka_broker, serde, topics  # noqa: E402
from vigil.paths import PROJECT_ROOT  # noqa: E402
from vigil.registry import service as registry_service  # noqa: E402
from vigil.registry.catalog import RegistrySchemaCatalog  # noqa: E402

VARIANTS = {"two_phase": (), "one_phase": ("--agg-phase", "ONE_PHASE"), "split": ("--split-distinct",)}


def variant_flags(spec: str) -> tuple[str, ...]:
    """`two_phase:p2:rocksdb` -> the job's flags."""
    name, *options = spec.split(":")
    flags = list(VARIANTS[name])
    for option in options:
        if option.startswith("p") and option[1:].isdigit():
            flags += ["--parallelism", option[1:]]
        elif option in ("rocksdb", "hashmap"):
            flags += ["--state-backend", option]
        else:
            raise SystemExit(f"unknown variant option {option!r} in {spec!r}")
    return tuple(flags)
KINDS = (["page_view"] * 45 + ["search"] * 8 + ["add_to_cart"] * 14 + ["checkout"] * 8 + ["payment_attempt"] * 8
         + ["payment_result"] * 8 + ["refund"] * 2 + ["chargeback"] * 1 + ["login"] * 6)


def zipf_picker(rng: random.Random, n: int, s: float):
    cumulative, total = [], 0.0
    for rank in range(1, n + 1):
        total += 1.0 / rank ** s
        cumulative.append(total)
    return lambda: bisect.bisect_left(cumulative, rng.random() * total)


def events(seed: int, count: int, rate: float, start_ms: int, tenants: int, merchants: int, users: int):
    """Clean events in event-time order: tenants and merchants Zipf-skewed, each merchant of one tenant."""
    rng = random.Random(seed)
    merchant_of = zipf_picker(rng, merchants, 1.1)
    user_of = zipf_picker(rng, users, 0.6)
    for i in range(count):
        merchant = merchant_of()
        kind = rng.choice(KINDS)
        money = kind in ("checkout", "payment_attempt", "payment_result", "refund", "chargeback")
        product = rng.randrange(2000) if kind in ("page_view", "add_to_cart", "checkout") else None
        yield {"event_id": f"b{seed}-{i}", "event_time": start_ms + int(i * 1000 / rate), "tenant_id": f"t{merchant % tenants:03d}",
               "merchant_id": f"m{merchant:05d}", "user_id": f"u{user_of():06d}", "session_id": None, "device_id": None,
               "ip": None, "card_fingerprint": None, "event_type": kind,
               "status": "approved" if kind == "payment_result" and rng.random() < 0.85 else
                         ("declined" if kind == "payment_result" else None),
               "amount": Decimal(rng.randrange(100, 50_000)).scaleb(-2) if money else None,
               "currency": rng.choice(["EUR", "USD", "GBP", "JPY"]) if money else None, "country": None,
               "latitude": None, "longitude": None, "product_id": f"p{product}" if product is not None else None,
               "category": f"c{product % 40}" if product is not None else None, "schema_version": 2,
               "payment_method": None, "loyalty_tier": None, "source_partition": 0, "source_offset": i}


def write(bootstrap: str, registry: str, topic: str, stream) -> tuple[int, dict]:
    from confluent_kafka import Producer

    catalog = RegistrySchemaCatalog(registry)
    schema_id = catalog.register(f"{topic}-value", serde.load_schema("clean-event.avsc"))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 262144,
                         "partitioner": "murmur2_random", "queue.buffering.max.messages": 500_000})
    count, per_merchant = 0, {}
    for event in stream:
        while True:
            try:
                producer.produce(topic, key=f"{event['tenant_id']}:{event['user_id']}".encode(),
                                 value=serde.encode(event, schema_id, catalog), timestamp=event["event_time"])
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        per_merchant[event["merchant_id"]] = per_merchant.get(event["merchant_id"], 0) + 1
    assert producer.flush(60) == 0
    return count, per_merchant


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of live processes (Linux /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_job(names: dict, database: str, extra: tuple[str, ...], events: int, limit_s: float) -> dict:
    """One unbounded run over the backlog: events/s and CPU ms per 1,000 events between 10 % and
    90 % of the events committed (or what was done within `limit_s`)."""
    from vigil import kafka_io, procs
    from vigil.serving import postgres

    user, password = postgres.writer_credentials()
    group = f"bench-{uuid.uuid4().hex[:8]}"
    rest_port = free_port()
    cmd = analytics_config.command({**names, "prefix": group}, "--jdbc-url", postgres.jdbc_url(database),
                                   "--jdbc-user", user, "--jdbc-password", password,
                                   "--checkpoint-interval-ms", "1000", "--flink-conf", f"rest.port={rest_port}",
                                   "--flink-conf", "rest.bind-address=127.0.0.1", *extra)
    job = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started, marks = time.monotonic(), {}
    try:
        while time.monotonic() - started < limit_s and job.poll() is None:
            time.sleep(1)
            done = sum(kafka_io.committed_offsets(names["bootstrap"], group, names["clean"]).values())
            now, cpu = time.monotonic(), cpu_seconds([job.pid, *procs.descendants(job.pid)])
            if done > 0:
                marks.setdefault("first", (now, done, cpu))
            if done >= 0.1 * events:
                marks.setdefault("from", (now, done, cpu))
            marks["to"] = (now, done, cpu)
            if done >= 0.9 * events:
                break
        if job.poll() is not None:
            raise SystemExit(f"the analytics job stopped:\n{job.stderr.read()[-3000:]}")
        try:
            emitted = sink_records(rest_port)
        except OSError as error:  # a JobManager too busy to answer: the rate still counts
            print(f"  (rows emitted not read: {error})", flush=True)
            emitted = {}
    finally:
        procs.kill_tree(job.pid)
        job.wait()
    if "first" not in marks:
        return {"events_per_s": 0.0, "cpu_ms_per_1k": float("nan"), "done": 0, "seconds": limit_s,
                "first_commit_s": float("nan"), "emitted": emitted}
    (t0, n0, c0), (t1, n1, c1) = marks.get("from", marks["first"]), marks["to"]
    return {"events_per_s": (n1 - n0) / (t1 - t0) if n1 > n0 else 0.0,
            "cpu_ms_per_1k": (c1 - c0) * 1e6 / (n1 - n0) if n1 > n0 else float("nan"),
            "done": n1, "seconds": t1 - started, "first_commit_s": marks["first"][0] - started, "emitted": emitted}


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sink_records(rest_port: int) -> dict[str, int]:
    """Rows each sink has received so far (Flink's numRecordsIn of the sink operators, summed over
    subtasks): what the windows emitted, before the JDBC sink keeps the last row per key."""
    import json
    import re
    import urllib.request

    def get(path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}{path}", timeout=60) as response:
            return json.loads(response.read())
    totals: dict[str, int] = {}
    for job in get("/jobs/overview")["jobs"]:
        if job["state"] != "RUNNING":
            continue
        for vertex in get(f"/jobs/{job['jid']}")["vertices"]:
            base = f"/jobs/{job['jid']}/vertices/{vertex['id']}/metrics"
            ids = [m["id"] for m in get(base) if re.search(r"Sink__\w+.*numRecordsIn$", m["id"])]
            if ids:
                for metric in get(f"{base}?get={','.join(ids)}"):
                    table = re.search(r"Sink__(\w+?)(\[|_\d|\.)", metric["id"]).group(1)
                    totals[table] = totals.get(table, 0) + int(float(metric["value"]))
    return totals


def row_counts(database: str) -> dict[str, int]:
    import psycopg

    from vigil.serving import postgres
    tables = ("sales_minute", "sales_hour", "sales_day", "products_hour", "products_day")
    with psycopg.connect(postgres.dsn("vigil_admin", database)) as connection:
        return {t: connection.execute(f"SELECT count(*) FROM analytics.{t}").fetchone()[0] for t in tables}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=150_000)
    p.add_argument("--rate", type=float, default=1_000.0, help="events per second of event time")
    p.add_argument("--tenants", type=int, default=50)
    p.add_argument("--merchants", type=int, default=5_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--variants", default="two_phase,one_phase,two_phase:p2,one_phase:p2,two_phase:rocksdb,split:rocksdb")
    p.add_argument("--limit-s", type=float, default=420.0, help="stop a run after this long")
    a = p.parse_args(argv)
    from vigil.serving import postgres, provision

    bootstrap = kafka_broker.BrokerSettings().bootstrap
    kafka_broker.start(log=lambda *_: None)
    registry_service.start(bootstrap, log=lambda *_: None)
    postgres.ensure_running(log=lambda *_: None)
    registry = registry_service.registry_url()
    prefix = f"bench-analytics-{uuid.uuid4().hex[:6]}"
    roles = (("clean", topics.CLEAN), ("dlq", topics.DLQ), ("alerts", topics.ALERTS),
             ("incidents", topics.INCIDENTS), ("features", topics.FEATURES))
    names = {role: f"{prefix}.{name}" for role, name in roles}
    topics.ensure_topics(bootstrap, [topics.like(names[role], name) for role, name in roles], log=lambda *_: None)
    start_ms = int(time.time() * 1000) - int(a.events / a.rate * 1000) - 600_000
    started = time.monotonic()
    count, per_merchant = write(bootstrap, registry, names["clean"],
                                events(7, a.events, a.rate, start_ms, a.tenants, a.merchants, a.users))
    tenant_of = {}
    for merchant, n in per_merchant.items():
        tenant_of.setdefault(f"t{int(merchant[1:]) % a.tenants:03d}", []).append(n)
    print(f"analytics bench: {count:,} events at {a.rate:,.0f} events/s of event time ({count / a.rate:,.0f} s), "
          f"{len(tenant_of)} tenants, {len(per_merchant):,} merchants; busiest merchant "
          f"{max(per_merchant.values()) / count:.1%}, busiest tenant {max(map(sum, tenant_of.values())) / count:.1%} "
          f"of events; written in {time.monotonic() - started:.0f} s", flush=True)
    print(f"{'variant':<18} {'run':>3} {'events/s':>9} {'CPU ms/1k ev':>12} {'events done':>11} {'first commit s':>14}",
          flush=True)
    results: dict[str, list[float]] = {}
    for repeat in range(a.repeat):
        for variant in a.variants.split(","):
            with provision.scratch_database("vigil_bench_analytics") as database:
                r = run_job({**names, "bootstrap": bootstrap}, database, variant_flags(variant), count, a.limit_s)
                if repeat == 0 and variant == a.variants.split(",")[0]:
                    counts = row_counts(database)
            results.setdefault(variant, []).append(r["events_per_s"])
            print(f"{variant:<18} {repeat + 1:>3} {r['events_per_s']:>9,.0f} {r['cpu_ms_per_1k']:>12.0f} "
                  f"{r['done']:>11,} {r['first_commit_s']:>14.0f}   rows emitted: "
                  + ", ".join(f"{t} {n:,}" for t, n in sorted(r["emitted"].items())), flush=True)
    print("rows in PostgreSQL after the first run: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    for variant, rates in results.items():
        print(f"{variant}: {min(rates):,.0f}-{max(rates):,.0f} events/s over {len(rates)} run(s)")


if __name__ == "__main__":
    main()
