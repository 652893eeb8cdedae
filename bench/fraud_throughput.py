"""Benchmark: the fraud job at a live rate, with event time advancing at wall-clock pace.

For each variant (scorer river|jvm, parallelism 1|2), in one run:
1. a fresh set of topics and the job started (MiniCluster in its own process, or the local
   standalone cluster with one TaskManager per unit of parallelism: --deploy cluster);
2. prefill: --prefill-minutes of traffic written as fast as the broker takes it, with event times
   ending now, so the job's windows hold that much history; the job catches up (lag 0) first;
3. live: --minutes of the generator's default mix written to events.clean at --rate events/s,
   each event when the wall clock reaches its event time (bench/live_traffic.py);
4. every --sample-s: events consumed (the job's committed offsets), lag, CPU seconds and RSS of
   each process (job, broker, replayer); latency of every low-latency decision (fraud.decisions)
   and every exactly-once score (fraud.scores, read_committed), from the broker's append time of
   the event in events.clean.
It prints a table per variant, the per-minute rates, and writes a PNG chart (rate and latency
percentiles over time) next to the --out text file. A variant with the flag `baseline` runs the
job of git revision --baseline-rev (exported with `git archive`), so a change is compared with the
code before it on the same broker and traffic, in one run.

    .venv/bin/python bench/fraud_throughput.py --rate 10000 --minutes 10 --prefill-minutes 60 \\
        --variants river:1,jvm:1,river:2 [--deploy cluster] [--state-backend rocksdb]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import memory  # noqa: E402
from bench.cpu_profile import process_cpu_s  # noqa: E402
from bench.fraud_setup import options_known_to, start_services  # noqa: E402
from bench.jvm_profile import StackSampler, jvm_of  # noqa: E402
from bench.source_tree import exported_tree, short_rev  # noqa: E402
from bench.live_traffic import CLEAN_SCHEMA, read_records, replay, traffic_files  # noqa: E402
from jobs import fraud_config  # noqa: E402
from vigil import flink_cluster, fraud_rules, kafka_broker, procs, topics  # noqa: E402
from vigil.paths import PROJECT_ROOT, state_dir  # noqa: E402
from vigil.registry.catalog import RegistrySchemaCatalog, value_decoder  # noqa: E402
from vigil.rules_cli import publish  # noqa: E402


def percentile(values: list[float], q: float) -> float | None:
    return memory.percentile(sorted(values), q * 100) if values else None


def spread(values: list[float]) -> str:
    if not values:
        return "no samples"
    p = [percentile(values, q) for q in (0.5, 0.95, 0.99)]
    return f"p50 {p[0]:,.0f} / p95 {p[1]:,.0f} / p99 {p[2]:,.0f} ms (n={len(values):,})"


def epoch_ms(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def peak_rss_mib(pids: list[int]) -> float:
    return memory.rss_bytes(set(pids), field="VmHWM") / 2**20


class Collector:
    """Reads a topic in a thread; keeps (receive ms, value) of every record."""

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
            for message in self.consumer.consume(1000, 0.05):
                if not message.error():
                    self.records.append((int(time.time() * 1000), self.decode(message.value())))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.consumer.close()


class GroupProgress:
    """Events the job has consumed (its consumer group's committed offsets) and the topic's end."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        from confluent_kafka import Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient
        self.topic, self.group = topic, group
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                  "isolation.level": "read_committed"})
        partitions = self.admin.list_topics(topic, timeout=10).topics[topic].partitions
        self.partitions = [TopicPartition(topic, p) for p in partitions]
        self.committed: dict[int, int] = {}   # newest committed offset seen per partition

    def consumed_and_end(self) -> tuple[int, int]:
        from confluent_kafka import ConsumerGroupTopicPartitions
        future = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.group, self.partitions)])
        for tp in future[self.group].result(timeout=10).topic_partitions:
            if tp.offset >= 0:  # a partition without a commit yet answers a negative sentinel
                self.committed[tp.partition] = max(tp.offset, self.committed.get(tp.partition, 0))
        consumed = sum(self.committed.values())
        end = sum(self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.partitions)
        return consumed, end

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Variant:
    scorer: str
    parallelism: int
    state_backend: str
    job_flags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return " ".join([f"{self.scorer} p{self.parallelism} {self.state_backend}", *self.job_flags])

    @staticmethod
    def parse(spec: str, default_backend: str) -> "Variant":
        """scorer:parallelism[:backend[:job flags]], e.g. river:2, jvm:1:rocksdb,
        river:1:hashmap:--object-reuse --watermark-interval-ms 1000; the flag `split` runs the
        exact and the fast path as two jobs (--paths exact, --paths fast), `baseline` the job of
        --baseline-rev."""
        parts = spec.split(":")
        return Variant(parts[0], int(parts[1]), parts[2] if len(parts) > 2 and parts[2] else default_backend,
                       tuple(parts[3].split()) if len(parts) > 3 else ())


@dataclass
class Outcome:
    variant: Variant
    samples: list[dict] = field(default_factory=list)   # t_s, consumed, end, cpu per process
    fast_ms: list[tuple[float, float]] = field(default_factory=list)     # (t_s, decision latency)
    exact_ms: list[tuple[float, float]] = field(default_factory=list)    # (t_s, visible latency)
    rss_mib: dict = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)
    sent: int = 0
    live_s: float = 0.0
    prefill: str = ""


class RunningJob:
    """The fraud job of one variant, in MiniCluster processes (one per job: two with `split`) or
    on the local cluster."""

    def __init__(self, names: dict, variant: Variant, args):
        self.deploy = args.deploy
        snapshots = tempfile.mkdtemp(prefix="bench-models-")
        flags = [f for f in variant.job_flags if f not in ("split", "baseline")]
        tree = args.baseline_tree if "baseline" in variant.job_flags else PROJECT_ROOT
        self.flags = options_known_to(tree, [
            *fraud_config.command(names)[3:], "--model-snapshot-dir", snapshots,
            "--state-backend", variant.state_backend, "--parallelism", str(variant.parallelism),
            "--scorer", variant.scorer, "--checkpoint-interval-ms", str(args.checkpoint_ms), *flags])
        jobs = [["--paths", "exact"], ["--paths", "fast"]] if "split" in variant.job_flags else [[]]
        self.log_path = Path(snapshots) / "job.log"
        self.processes: list[subprocess.Popen] = []
        if self.deploy == "cluster":
            flink_cluster.stop(log=lambda *_: None)
            flink_cluster.start(taskmanagers=variant.parallelism * len(jobs), log=lambda *_: None)
            self.job_ids = [flink_cluster.submit_python_job(tree / "jobs" / "fraud_detection.py",
                                                            self.flags + paths) for paths in jobs]
        else:
            log = open(self.log_path, "w")
            self.processes = [subprocess.Popen([sys.executable, "-m", "jobs.fraud_detection", *self.flags, *paths],
                                               cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True) for paths in jobs]

    def pids(self) -> list[int]:
        if self.processes:
            return [p for process in self.processes for p in [process.pid, *procs.descendants(process.pid)]]
        jm = procs.read_pid(flink_cluster.home() / "pid" / "jobmanager.pid")
        tms = flink_cluster.taskmanager_pids()
        return [p for root in [jm, *tms] if root for p in [root, *procs.descendants(root)]]

    def jvm(self) -> int | None:
        """The JVM running the (exact) job's tasks (with --deploy cluster: the first TaskManager)."""
        if self.processes:
            return jvm_of(self.processes[0].pid)
        tms = flink_cluster.taskmanager_pids()
        return jvm_of(tms[0]) if tms else None

    def alive(self) -> bool:
        if self.processes:
            return all(process.poll() is None for process in self.processes)
        return all(flink_cluster.job(job_id)["state"] == "RUNNING" for job_id in self.job_ids)

    def stop(self) -> None:
        if self.processes:
            for process in self.processes:
                procs.kill_tree(process.pid)
                process.wait(timeout=30)
        else:
            for job_id in self.job_ids:
                flink_cluster.cancel(job_id)
            flink_cluster.stop(log=lambda *_: None)


def run_variant(variant: Variant, files: list[Path], bootstrap: str, registry: str, args) -> Outcome:
    outcome = Outcome(variant)
    names = topics.create_fraud_topics(bootstrap, f"speed-{uuid.uuid4().hex[:6]}")
    schema_id = RegistrySchemaCatalog(registry).register(f"{names['clean']}-value", CLEAN_SCHEMA)
    publish(bootstrap, names["rules"], fraud_rules.default_message(int(time.time() * 1000) - 7 * 24 * 3600_000))
    job = RunningJob(names, variant, args)
    progress = GroupProgress(bootstrap, names["clean"], names["prefix"])
    broker_pid = kafka_broker.pid()
    prefill_ms = int(args.prefill_minutes * 60_000)
    try:
        records = read_records(files)
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        sent, next_offset = replay(bootstrap, names["clean"], records, schema_id, 0, prefill_ms,
                                   now_ms - prefill_ms, paced=False) if prefill_ms else (0, 0)
        # the job caught up when its committed offsets reach the end (checkpoints commit them)
        if sent:
            procs.wait_until(lambda: (lambda c, e: e > 0 and c >= e)(*progress.consumed_and_end()) or not job.alive(),
                             timeout=args.prefill_timeout_s, what="the job to catch up with the prefill",
                             interval=2)
        assert job.alive(), f"the job stopped during the prefill; log: {job.log_path}"
        outcome.prefill = (f"prefill {sent:,} events ({args.prefill_minutes:g} min of event time) consumed in "
                           f"{time.monotonic() - started:.0f} s ({sent / max(1e-9, time.monotonic() - started):,.0f}/s)")
        print(f"  {variant.name}: {outcome.prefill}", flush=True)
        fast = Collector(bootstrap, registry, names["decisions"], committed=False)
        exact = Collector(bootstrap, registry, names["scores"], committed=True)
        live_start_ms = int(time.time() * 1000) + 500
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(args.sample_s):
                consumed, end = progress.consumed_and_end()
                outcome.samples.append({
                    "t_s": time.time() - live_start_ms / 1000, "consumed": consumed, "end": end,
                    "cpu_job": process_cpu_s(set(job.pids())),
                    "cpu_broker": process_cpu_s({broker_pid} if broker_pid else set()),
                    "cpu_replayer": sum(os.times()[:2])})

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        live_ms = int(args.minutes * 60_000)
        stacks = StackSampler(job.jvm()) if args.profile and job.jvm() else None
        with stacks or contextlib.nullcontext():
            outcome.sent, _ = replay(bootstrap, names["clean"], records, schema_id, next_offset or prefill_ms,
                                     (next_offset or prefill_ms) + live_ms, live_start_ms, paced=True)
        outcome.profile = stacks.report() if stacks else []
        outcome.live_s = time.time() - live_start_ms / 1000
        time.sleep(args.drain_s)
        stop_sampling.set()
        sampler.join(timeout=30)
        fast.stop()
        exact.stop()
        assert job.alive(), f"the job stopped during the live phase; log: {job.log_path}"
        outcome.rss_mib = {"job": peak_rss_mib(job.pids()),
                           "broker": peak_rss_mib([broker_pid]) if broker_pid else 0.0,
                           "replayer": peak_rss_mib([os.getpid()])}
    finally:
        job.stop()
        progress.close()
    for seen, d in fast.records:
        appended = epoch_ms(d["appended_at"])
        if appended >= live_start_ms:
            outcome.fast_ms.append(((appended - live_start_ms) / 1000, d["decision_latency_ms"]))
    for seen, s in exact.records:
        appended = epoch_ms(s["decided_at"]) - s["detection_latency_ms"]
        if appended >= live_start_ms:
            outcome.exact_ms.append(((appended - live_start_ms) / 1000, seen - appended))
    return outcome


def per_minute(outcome: Outcome) -> list[tuple[int, float]]:
    """(minute, events/s consumed in it) from the samples."""
    rates, samples = [], outcome.samples
    minute = 0
    while True:
        window = [s for s in samples if minute * 60 <= s["t_s"] < min((minute + 1) * 60, outcome.live_s + 1)]
        if len(window) < 2:
            return rates
        rates.append((minute, (window[-1]["consumed"] - window[0]["consumed"]) / (window[-1]["t_s"] - window[0]["t_s"])))
        minute += 1


def report(outcome: Outcome, args) -> list[str]:
    v, s = outcome.variant, outcome.samples
    live = [x for x in s if 0 <= x["t_s"] <= outcome.live_s]
    lines = [f"{v.name}: {outcome.sent:,} events at {args.rate:,.0f}/s for {outcome.live_s:.0f} s "
             f"({outcome.sent / max(1e-9, outcome.live_s):,.0f}/s written); {outcome.prefill}"]
    if len(live) >= 2:
        consumed = live[-1]["consumed"] - live[0]["consumed"]
        span = live[-1]["t_s"] - live[0]["t_s"]
        cpu = {k: live[-1][k] - live[0][k] for k in ("cpu_job", "cpu_broker", "cpu_replayer")}
        lines.append(f"  consumed {consumed / span:,.0f} events/s over the live phase; lag at the end "
                     f"{s[-1]['end'] - s[-1]['consumed']:,} events (after {args.drain_s:.0f} s of drain)")
        lines.append("  CPU s per 1,000 events: " + ", ".join(
            f"{k[4:]} {1000 * c / max(1, consumed):.3f}" for k, c in cpu.items())
            + f" (job {cpu['cpu_job'] / span:.2f} cores)")
    rates = per_minute(outcome)
    if rates:
        lines.append("  events/s per minute: " + ", ".join(f"{r:,.0f}" for _, r in rates)
                     + (f"; last/first {rates[-1][1] / rates[0][1]:.2f}" if len(rates) > 1 and rates[0][1] > 0 else ""))
    lines.append(f"  low-latency decision   {spread([ms for _, ms in outcome.fast_ms])}")
    lines.append(f"  exactly-once visible   {spread([ms for _, ms in outcome.exact_ms])}")
    lines.append("  peak RSS MiB: " + ", ".join(f"{k} {m:,.0f}" for k, m in outcome.rss_mib.items()))
    return lines + ["  " + line for line in outcome.profile]


def args_sample_s(outcome: Outcome) -> float:
    """The sampling period of a run, from its samples."""
    s = outcome.samples
    return (s[-1]["t_s"] - s[0]["t_s"]) / max(1, len(s) - 1) if len(s) > 1 else 5.0


def chart(outcomes: list[Outcome], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, fast_ax, exact_ax) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for color, o in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], outcomes):
        # Offsets are committed per checkpoint: a rate over 30 s of samples, not between two of them.
        s, span = o.samples, max(1, int(30 / args_sample_s(o)))
        t = [(a["t_s"] + b["t_s"]) / 2 for a, b in zip(s, s[span:])]
        r = [(b["consumed"] - a["consumed"]) / max(1e-9, b["t_s"] - a["t_s"]) for a, b in zip(s, s[span:])]
        rate_ax.plot(t, r, color=color, label=o.variant.name)
        for ax, series in ((fast_ax, o.fast_ms), (exact_ax, o.exact_ms)):
            buckets: dict[int, list[float]] = {}
            for at, ms in series:
                buckets.setdefault(int(at // 10), []).append(ms)
            xs = sorted(buckets)
            for q, style in ((0.5, "-"), (0.99, "--")):
                ax.plot([x * 10 + 5 for x in xs], [percentile(buckets[x], q) for x in xs], style, color=color,
                        label=f"{o.variant.name} p{int(q * 100)}")
    rate_ax.set_ylabel("events/s consumed (30 s)")
    for ax, series in ((fast_ax, "fast_ms"), (exact_ax, "exact_ms")):
        if any(getattr(o, series) for o in outcomes):
            ax.set_yscale("log")
    fast_ax.set_ylabel("low-latency decision ms")
    exact_ax.set_ylabel("exactly-once visible ms")
    exact_ax.set_xlabel("seconds of the live phase")
    for ax in (rate_ax, fast_ax, exact_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=10_000.0, help="events per second (live phase)")
    parser.add_argument("--minutes", type=float, default=10.0, help="live phase duration")
    parser.add_argument("--prefill-minutes", type=float, default=60.0, help="history written before the live phase")
    parser.add_argument("--prefill-timeout-s", type=float, default=7200.0)
    parser.add_argument("--variants", default="river:1,jvm:1,river:2",
                        help="scorer:parallelism[:state backend[:job flags]], comma separated")
    parser.add_argument("--deploy", choices=["minicluster", "cluster"], default="minicluster")
    parser.add_argument("--state-backend", choices=["rocksdb", "hashmap"], default="hashmap")
    parser.add_argument("--checkpoint-ms", type=int, default=2000)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--drain-s", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true", help="jstack samples of the job during the live phase")
    parser.add_argument("--traffic-dir", default=str(state_dir() / "bench-traffic"))
    parser.add_argument("--out", default=str(PROJECT_ROOT / "docs" / "bench" / "fraud_throughput.txt"))
    parser.add_argument("--baseline-rev", default="HEAD", help="git revision that variants flagged `baseline` run")
    args = parser.parse_args()
    args.baseline_tree = exported_tree(args.baseline_rev, "vigil-fraud-baseline") if "baseline" in args.variants else None
    bootstrap, registry = start_services()
    seconds = (args.prefill_minutes + args.minutes) * 60 + 30
    files = traffic_files(Path(args.traffic_dir), args.rate, seconds)
    variants = [Variant.parse(v, args.state_backend) for v in args.variants.split(",")]
    outcomes, lines = [], [f"fraud job live: {args.rate:,.0f} events/s for {args.minutes:g} min after "
                           f"{args.prefill_minutes:g} min of prefill; {args.deploy}, "
                           f"checkpoints every {args.checkpoint_ms} ms, {os.cpu_count()} cores"
                           + (f"; baseline = {args.baseline_rev} ({short_rev(args.baseline_rev)})"
                              if args.baseline_tree else "")]
    print(lines[0], flush=True)
    for variant in variants:
        outcome = run_variant(variant, files, bootstrap, registry, args)
        outcomes.append(outcome)
        for line in report(outcome, args):
            print(line, flush=True)
            lines.append(line)
    by_name = {o.variant.name: o for o in outcomes}

    def live_rate(o: Outcome) -> float:
        live = [x for x in o.samples if 0 <= x["t_s"] <= o.live_s]
        return (live[-1]["consumed"] - live[0]["consumed"]) / max(1e-9, live[-1]["t_s"] - live[0]["t_s"])

    for a, b, what in (("river p1", "jvm p1", "Python path / JVM-only path"), ("river p2", "river p1", "parallelism 2 / 1")):
        a, b = f"{a} {args.state_backend}", f"{b} {args.state_backend}"
        if a in by_name and b in by_name:
            line = f"{what}: {live_rate(by_name[a]) / max(1e-9, live_rate(by_name[b])):.2f} (events/s consumed)"
            print(line)
            lines.append(line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    (out.with_suffix(".json")).write_text(json.dumps(
        [{"variant": o.variant.name, "samples": o.samples, "rss_mib": o.rss_mib, "fast_ms": o.fast_ms,
          "exact_ms": o.exact_ms} for o in outcomes]))
    chart(outcomes, out.with_suffix(".png"))
    print(f"written: {out}, {out.with_suffix('.png')}")


def rechart(json_path: Path) -> None:
    """The chart again from a run's JSON (python bench/fraud_throughput.py --rechart FILE.json)."""
    outcomes = []
    for item in json.loads(json_path.read_text()):
        scorer, p, backend, *flags = item["variant"].split(" ")
        o = Outcome(Variant(scorer, int(p[1:]), backend, tuple(flags)), samples=item["samples"])
        o.fast_ms = [tuple(x) for x in item.get("fast_ms", [])]
        o.exact_ms = [tuple(x) for x in item.get("exact_ms", [])]
        outcomes.append(o)
    chart(outcomes, json_path.with_suffix(".png"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rechart"]:
        rechart(Path(sys.argv[2]))
    else:
        main()
