"""Benchmark: speed of the fraud job on this machine (local MiniCluster, one slot).

1. Backlog: the job (bounded) over --events generated events already in events.clean: wall time,
   and the sustained rate between its first and last decision (start-up excluded). While it runs,
   thread dumps of its JVM every 0.5 s show where time goes (share of samples in which each task
   thread was running; in thread mode Python runs inside its operator's task thread).
2. Live: the job running, events copied into a fresh events.clean at --rate events/s for
   --seconds (event time advancing at the same pace, so watermarks behave as in production);
   latency from the broker's append time of each event to:
   - the low-latency decision (fraud.decisions, at-least-once): decided, and visible to a consumer;
   - the exactly-once score (fraud.scores, read_committed): visible to a consumer.

    .venv/bin/python bench/fraud_throughput.py [--events 100000] [--rate 1000] [--seconds 60]
                                               [--state-backend rocksdb] [--skip-live]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fraud_setup import prepare  # noqa: E402
from jobs import fraud_detection  # noqa: E402
from udfs import fraud_rules  # noqa: E402
from vigil import kafka_io, procs, topics  # noqa: E402
from vigil.paths import PROJECT_ROOT  # noqa: E402
from vigil.registry.catalog import read_values, value_decoder  # noqa: E402
from vigil.rules_cli import publish  # noqa: E402


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {pick(0.5):,.0f} / p95 {pick(0.95):,.0f} / p99 {pick(0.99):,.0f} ms (n={len(ordered):,})"


def epoch_ms(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


class ThreadSampler:
    """jstack of the job's JVM every `interval_s`: how often each task thread was RUNNABLE."""

    TASK = re.compile(r'^"(.+?) \(\d+/\d+\)#\d+"')

    def __init__(self, root_pid: int, interval_s: float = 0.5):
        self.root_pid, self.interval_s = root_pid, interval_s
        self.samples, self.running = 0, Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _jvm(self) -> int | None:
        for pid in procs.descendants(self.root_pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                    return pid
            except OSError:
                continue
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            jvm = self._jvm()
            if jvm is None:
                continue
            dump = subprocess.run(["jstack", str(jvm)], capture_output=True, text=True).stdout
            self.samples += 1
            name = None
            for line in dump.splitlines():
                match = self.TASK.match(line)
                if match:
                    name = match.group(1)
                elif name and "java.lang.Thread.State: RUNNABLE" in line:
                    self.running[name] += 1
                    name = None
                elif not line.strip():
                    name = None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def report(self, top: int = 8) -> list[str]:
        lines = []
        for name, count in self.running.most_common(top):
            short = name if len(name) < 110 else name[:107] + "..."
            lines.append(f"  {count / max(1, self.samples):>5.0%}  {short}")
        return lines


class Collector:
    """Reads a topic from the beginning in a thread; keeps (receive ms, value) of every record."""

    def __init__(self, bootstrap: str, registry: str, topic: str, committed: bool):
        from confluent_kafka import Consumer
        self.decode = value_decoder(registry)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "isolation.level": "read_committed" if committed else "read_uncommitted",
                                  "fetch.wait.max.ms": 10})
        self.consumer.subscribe([topic])
        self.records: list[tuple[int, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.consumer.poll(0.05)
            if message is not None and not message.error():
                self.records.append((int(time.time() * 1000), self.decode(message.value())))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.consumer.close()


def events_in_time_order(bootstrap: str, registry: str, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every committed record of `topic`, in event-time order: a consumer returns
    partitions in bursts, and copying them so would skew the partitions' event times apart and
    hold the job's watermark (the minimum over partitions) back."""
    decode = value_decoder(registry)
    records = [(decode(m.value())["event_time"], m.key(), m.value()) for m in kafka_io.read(bootstrap, topic)]
    records.sort(key=lambda record: record[0])
    return [(key, value) for _, key, value in records]


def copy_paced(bootstrap: str, records: list[tuple[bytes, bytes]], target: str, rate: float, seconds: float) -> int:
    """Write `records` to `target` at `rate` per second for at most `seconds`."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "acks": "all"})
    sent, start = 0, time.monotonic()
    for key, value in records:
        due = start + sent / rate
        now = time.monotonic()
        if now - start >= seconds:
            break
        if due > now:
            producer.poll(0)
            time.sleep(due - now)
        producer.produce(target, key=key, value=value)
        sent += 1
        if sent % 500 == 0:
            producer.poll(0)
    producer.flush(30)
    return sent


def backlog(prepared, args) -> None:
    names = prepared.names
    snapshots = tempfile.mkdtemp(prefix="bench-models-")
    cmd = fraud_detection.command(names, "--bounded", "--labels-idle-timeout", "30 s", "--model-snapshot-dir",
                                  snapshots, "--state-backend", args.state_backend)
    started = time.monotonic()
    job = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with ThreadSampler(job.pid) as sampler:
        output, _ = job.communicate(timeout=7200)
    wall = time.monotonic() - started
    if job.returncode != 0:
        raise SystemExit(f"fraud job failed:\n{output[-3000:]}")
    scores = read_values(prepared.bootstrap, prepared.registry, names["scores"])
    decisions = read_values(prepared.bootstrap, prepared.registry, names["decisions"])
    first = min(epoch_ms(d["decided_at"]) for d in decisions + scores)
    last = max(epoch_ms(s["decided_at"]) for s in scores)
    span = max(0.001, (last - first) / 1000)
    print(f"backlog ({args.state_backend} state, one slot): {prepared.events:,} events in {wall:.1f} s wall "
          f"({prepared.events / wall:,.0f} events/s, start-up included); first to last decision {span:.1f} s "
          f"-> {prepared.events / span:,.0f} events/s sustained; {len(scores):,} payments scored, "
          f"{len(decisions):,} fast decisions")
    print(f"where time goes (share of {sampler.samples} thread dumps in which a task thread was running):")
    print("\n".join(sampler.report()))


def live(prepared, args) -> None:
    bootstrap, registry = prepared.bootstrap, prepared.registry
    names = topics.create_fraud_topics(bootstrap, f"live-{uuid.uuid4().hex[:6]}")
    publish(bootstrap, names["rules"], fraud_rules.default_message(prepared.start_ms - 24 * 3600_000))
    snapshots = tempfile.mkdtemp(prefix="bench-models-")
    log = open(Path(snapshots) / "job.log", "w")
    cmd = fraud_detection.command(names, "--model-snapshot-dir", snapshots, "--state-backend", args.state_backend)
    job = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    fast = Collector(bootstrap, registry, names["decisions"], committed=False)
    exact = Collector(bootstrap, registry, names["scores"], committed=True)
    records = events_in_time_order(bootstrap, registry, prepared.names["clean"])
    try:
        warmup = int(args.rate * 5)  # until the job decides these, it is still starting
        copy_paced(bootstrap, records[:warmup], names["clean"], args.rate, warmup / args.rate)
        procs.wait_until(lambda: len(fast.records) > 0, timeout=300, what="the job's first decisions")
        measured_from = int(time.time() * 1000)
        sent = copy_paced(bootstrap, records[warmup:], names["clean"], args.rate, args.seconds)
        sent_until = time.time()
        time.sleep(args.drain_s)
        assert job.poll() is None, f"the job stopped; log in {log.name}"
    finally:
        procs.kill_tree(job.pid)
        job.wait(timeout=30)
        fast.stop()
        exact.stop()
    decided = [(seen, d) for seen, d in fast.records if epoch_ms(d["appended_at"]) >= measured_from]
    visible_fast = [seen - epoch_ms(d["appended_at"]) for seen, d in decided]
    scored = [(seen, epoch_ms(s["decided_at"]) - s["detection_latency_ms"], s) for seen, s in exact.records]
    scored = [(seen, appended, s) for seen, appended, s in scored if appended >= measured_from]
    print(f"live: {sent:,} events copied at {args.rate:,.0f}/s for {args.seconds:.0f} s "
          f"({sent / max(1e-9, sent_until - measured_from / 1000):,.0f}/s achieved), state {args.state_backend}")
    print(f"  low-latency path  decided  {percentiles([d['decision_latency_ms'] for _, d in decided])}")
    print(f"  low-latency path  visible  {percentiles(visible_fast)}")
    print(f"  exactly-once path decided  {percentiles([s['detection_latency_ms'] for _, _, s in scored])}")
    print(f"  exactly-once path visible  {percentiles([seen - appended for seen, appended, _ in scored])}")
    behind = [seen - appended for seen, appended, _ in scored if seen / 1000 > sent_until]
    print(f"  scores seen after the copy ended: {len(behind):,} of {len(scored):,} "
          f"(a job that keeps up has only the last seconds there)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="live phase: events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="live phase: duration")
    parser.add_argument("--drain-s", type=float, default=20.0, help="live phase: wait for the last outputs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state-backend", choices=["rocksdb", "hashmap"], default="hashmap")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-backlog", action="store_true")
    args = parser.parse_args()
    # Event time runs at the live rate, so the copied events arrive as fast as their times advance.
    prepared = prepare(args.events, args.seed, rate=args.rate, fraud_fraction=0.02, prefix="speed")
    print(f"prepared {args.events:,} events (ingest {prepared.ingest_s:.0f} s)", flush=True)
    if not args.skip_backlog:
        backlog(prepared, args)
    if not args.skip_live:
        live(prepared, args)


if __name__ == "__main__":
    main()
