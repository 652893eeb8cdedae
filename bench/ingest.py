"""Benchmark: the ingest job on the local Flink cluster: sustained events/s, end-to-end latency,
where the CPU goes, and the peak memory of the local stack.

For each variant it starts the job on fresh topics and fresh TaskManagers and measures:
1. throughput: a backlog of --events records (2 % bad input) is written first; the job then
   drains it; events/s = backlog / time from the first to the last record the source emits,
   and the time until all outputs are committed (visible to read_committed readers). During the
   drain: Flink's busy / back-pressured time per task, CPU per process and per JVM thread (in
   microseconds of CPU per event: less sensitive than events/s to what else runs on the machine);
2. state: the size of the last completed checkpoint, per de-duplication key;
3. latency: with the job caught up, events are produced at --rate for --seconds; latency is the
   time from the producer's send to the event being read from events.clean by a read_committed
   consumer (same clock, same process): p50/p95/p99.
Exactly-once output is visible once per checkpoint, so latency is dominated by the checkpoint
interval (stated in the output).

Variants: `current` runs this working tree; `baseline` runs the tree of git revision
--baseline-rev (exported with `git archive`), so a change is compared with the code before it in
one invocation, on the same broker and cluster. --repeat alternates them.

    .venv/bin/python bench/ingest.py [--events 300000] [--rate 2000] [--seconds 30]
        [--checkpoint-interval-ms 1000] [--variants baseline,current] [--baseline-rev HEAD]
        [--repeat 1] [--python-mode thread] [--parallelism 1] [--state-backend rocksdb]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu_profile import BusyTime, CpuProfile  # noqa: E402
from bench.memory import PeakMemory, own_pid, percentile  # noqa: E402
from bench.source_tree import exported_tree, short_rev  # noqa: E402
from vigil.kafka_io import format_offsets  # noqa: E402
from vigil import flink_cluster, kafka_broker, procs, topics  # noqa: E402
from vigil.generator.producer import produce  # noqa: E402
from vigil.generator.stream import EventStream, StreamSettings  # noqa: E402
from vigil.generator.wire import EventWriter  # noqa: E402
from vigil.registry import service as registry_service  # noqa: E402
from vigil.registry.catalog import value_decoder  # noqa: E402

V2_FRACTION = 0.3  # mixed v1/v2 producers, as during a schema roll-out
from vigil.paths import PROJECT_ROOT, state_dir  # noqa: E402


def _source_records_out(job_id: str) -> int:
    """Records the source's task has sent downstream (to de-duplication and the DLQ)."""
    for vertex in flink_cluster.job(job_id)["vertices"]:
        if vertex["name"].startswith("Source"):
            return vertex["metrics"]["write-records"]
    return 0


def _count_committed(bootstrap: str, topic: str) -> int:
    """Records a read_committed reader can see (end offsets include transaction markers)."""
    from vigil import kafka_io
    return sum(1 for _ in kafka_io.read(bootstrap, topic, idle_timeout_s=3, max_wait_s=600))


def _latency(bootstrap: str, names: dict, rate: float, seconds: float) -> list[float]:
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})
    partitions = consumer.list_topics(names["clean"], timeout=10).topics[names["clean"]].partitions
    from vigil import kafka_io
    ends = kafka_io.end_offsets(bootstrap, names["clean"])
    consumer.assign([TopicPartition(names["clean"], p, ends[p]) for p in partitions])
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    decode_clean = value_decoder(registry_service.registry_url())
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or len(latencies) < len(sent_at) * 0.999:
            message = consumer.poll(0.05)
            if message is None or message.error():
                if done.is_set() and time.time() > deadline:
                    return
                continue
            received = time.time()
            event_id = decode_clean(message.value())["event_id"]
            if event_id in sent_at:
                latencies.append((received - sent_at[event_id]) * 1000)

    class Recording:
        """Wraps the stream to note each event's send time (the producer sends right after)."""
        def __init__(self, records):
            self.records = records

        def __iter__(self):
            for record in self.records:
                if record.expected == "clean" and record.event_id:
                    sent_at[record.event_id] = time.time()
                yield record

    deadline = float("inf")
    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    stream = EventStream(StreamSettings(seed=9, start_ms=int(time.time() * 1000), rate=rate, v2_fraction=V2_FRACTION),
                         EventWriter.registered(registry_service.registry_url(), names["raw"], with_v2=True))
    produce(iter(Recording(stream.records())), bootstrap, rate, duration_s=seconds, pace=True,
            topic=names["raw"], progress_every_s=1e9)
    deadline = time.time() + 30
    done.set()
    reader.join()
    consumer.close()
    return sorted(latencies)


COMPONENTS = {  # the local stack's processes, by name: functions returning their current pids
    "kafka": lambda: [procs.read_pid(state_dir() / "kafka" / "kafka.pid")],
    "jobmanager": lambda: [procs.read_pid(flink_cluster.home() / "pid" / "jobmanager.pid")],
    "taskmanager+python": flink_cluster.taskmanager_pids,
    "bench": own_pid,
}


def processes() -> dict[str, list[int]]:
    return {name: pids() for name, pids in COMPONENTS.items()}


@dataclass(frozen=True)
class Variant:
    name: str
    tree: Path  # the project tree whose jobs/ingest.py runs


def _state_size(job_id: str) -> int | None:
    """Full state size of the job's last completed checkpoint, in bytes."""
    latest = flink_cluster.rest(f"/jobs/{job_id}/checkpoints")["latest"]["completed"]
    return latest["state_size"] if latest else None


def run_variant(variant: Variant, args, bootstrap: str) -> dict:
    flink_cluster.stop_taskmanagers(log=lambda *_: None)  # an embedded Python keeps its modules
    for _ in range(args.parallelism):
        flink_cluster.start_taskmanager(log=lambda *_: None)
    names = topics.create_ingest_topics(bootstrap, f"bench-{variant.name}-{uuid.uuid4().hex[:6]}")
    stream = EventStream(StreamSettings(seed=5, start_ms=int(time.time() * 1000) - 600_000, rate=2000.0,
                                        bad_fraction=0.02, v2_fraction=V2_FRACTION),
                         EventWriter.registered(registry_service.registry_url(), names["raw"], with_v2=True))
    stats = produce(stream.records(), bootstrap, 2000.0, events=args.events, pace=False,
                    topic=names["raw"], progress_every_s=1e9)
    assert stats.failed == 0, stats.first_error
    start_offsets = format_offsets({p: 0 for p in range(topics.TopicSpec(names["raw"]).partitions)})
    job_id = flink_cluster.submit_python_job(variant.tree / "jobs" / "ingest.py", [
        "--raw-topic", names["raw"], "--clean-topic", names["clean"], "--dlq-topic", names["dlq"],
        "--transactional-id-prefix", names["prefix"], "--group-id", names["prefix"],
        "--start-offsets", start_offsets, "--python-mode", args.python_mode,
        "--parallelism", str(args.parallelism), "--state-backend", args.state_backend,
        "--checkpoint-interval-ms", str(args.checkpoint_interval_ms)])
    try:
        submitted = time.monotonic()
        procs.wait_until(lambda: _source_records_out(job_id) > 0, 180, "the first record")
        first = time.monotonic()
        with BusyTime(job_id) as busy, CpuProfile(flink_cluster.taskmanager_pids(), processes()) as cpu:
            procs.wait_until(lambda: _source_records_out(job_id) >= args.events, 1800, "the backlog to drain",
                             interval=0.2)
        drained = time.monotonic()
        committed = _count_committed(bootstrap, names["clean"]) + _count_committed(bootstrap, names["dlq"])
        visible = time.monotonic()
        clean = _count_committed(bootstrap, names["clean"])
        state = _state_size(job_id)
        latencies = _latency(bootstrap, names, args.rate, args.seconds)
        return {
            "variant": variant.name, "events": args.events, "committed": committed, "clean": clean,
            "startup_s": first - submitted, "drain_s": drained - first,
            "events_per_s": args.events / (drained - first), "visible_s": visible - first,
            "latencies": latencies, "state_bytes": state, "cpu_us": cpu.us_per_event(args.events),
            "profile": busy.report() + cpu.report(args.events),
        }
    finally:
        flink_cluster.cancel(job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=1000)
    parser.add_argument("--variants", default="current", help="comma-separated: current, baseline")
    parser.add_argument("--baseline-rev", default="HEAD", help="git revision the baseline variant runs")
    parser.add_argument("--repeat", type=int, default=1, help="run the variants this many times, alternating")
    parser.add_argument("--python-mode", choices=["thread", "process"], default="thread")
    parser.add_argument("--parallelism", type=int, default=1, help="also the number of TaskManagers (one slot each)")
    parser.add_argument("--state-backend", choices=["rocksdb", "hashmap"], default="rocksdb")
    args = parser.parse_args()

    trees = {"current": PROJECT_ROOT}
    if "baseline" in args.variants.split(","):
        trees["baseline"] = exported_tree(args.baseline_rev, "vigil-ingest-baseline")
    variants = [Variant(name, trees[name]) for name in args.variants.split(",")] * args.repeat

    kafka_broker.start(log=lambda *_: None)
    registry_service.start(kafka_broker.BrokerSettings().bootstrap, log=lambda *_: None)
    flink_cluster.start(taskmanagers=1, log=lambda *_: None)
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    memory = PeakMemory(COMPONENTS)
    results = []
    with memory:
        for variant in variants:
            results.append(run_variant(variant, args, bootstrap))

    rev = short_rev(args.baseline_rev)
    print(f"\ningest job on the local cluster ({args.parallelism} TaskManager(s) of one slot, parallelism "
          f"{args.parallelism}, python {args.python_mode} mode, checkpoint interval {args.checkpoint_interval_ms} ms, "
          f"{args.state_backend}, exactly-once Kafka sinks; baseline = {args.baseline_rev} ({rev}), current = working tree)")
    for r in results:
        lat = r["latencies"]
        state = (f"; last checkpoint {r['state_bytes'] / 2**20:,.1f} MiB = {r['state_bytes'] / max(1, r['clean']):,.0f} "
                 f"bytes per clean event" if r["state_bytes"] else "")
        print(f"- {r['variant']}: backlog of {r['events']:,} drained in {r['drain_s']:.1f}s = "
              f"{r['events_per_s']:,.0f} events/s sustained (job start to first record {r['startup_s']:.1f}s; "
              f"all {r['committed']:,} committed outputs visible {r['visible_s']:.1f}s after the first record{state})")
        print(f"  end-to-end latency at {args.rate:,.0f} events/s for {args.seconds:.0f}s, send -> visible in "
              f"events.clean (read_committed), {len(lat):,} events: p50 {percentile(lat, 50):,.0f} ms, "
              f"p95 {percentile(lat, 95):,.0f} ms, p99 {percentile(lat, 99):,.0f} ms, max {lat[-1] if lat else float('nan'):,.0f} ms")
        print("  during the drain:\n" + "\n".join(r["profile"]))
    if args.repeat > 1 or len(set(args.variants.split(","))) > 1:
        for name in dict.fromkeys(v.name for v in variants):
            rates = [r["events_per_s"] for r in results if r["variant"] == name]
            cpu = [r["cpu_us"] for r in results if r["variant"] == name]
            print(f"{name}: events/s per run {' / '.join(f'{x:,.0f}' for x in rates)}, median "
                  f"{statistics.median(rates):,.0f}; CPU of the stack per event (us) {' / '.join(f'{x:.1f}' for x in cpu)}, "
                  f"median {statistics.median(cpu):.1f}")
    print(memory.report())


if __name__ == "__main__":
    main()
