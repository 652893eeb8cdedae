"""`vigil dr drill`: lose the whole Flink cluster under traffic, restore every job on a fresh one.

What a drill does (docs/runbooks/dr-drill.md, ADR 0014):
1. On the drill's own Flink cluster (its own folder and ports, so a user's cluster and jobs are
   never touched) and its own topics, the ingest and fraud jobs run under generator traffic
   (raw -> ingest -> clean -> fraud -> alerts/scores), checkpointing; a savepoint of each is taken.
2. Two probes of state continuity go in before the loss: the first 15 payments of a velocity
   burst on one card (the tenant's 10-minute threshold is 20), and events whose copies are sent
   again after the restore (the de-duplication state must still know them).
3. The JobManager and TaskManagers are killed with SIGKILL and the cluster's local working files
   wiped; only the checkpoint/savepoint store survives, as object storage would.
4. A fresh cluster starts and every job is submitted from its newest restore point (retained
   checkpoint or savepoint, whichever is newer). RTO = kill -> every job checkpointing again.
5. The burst's last 10 payments go in (an alert proves the window kept the first 15), the copies
   are sent again, and with --broker-kill the Kafka broker is killed with SIGKILL and restarted
   under traffic (the jobs recover by themselves).
6. Accounting on the committed output: every raw record once in clean or DLQ with the expected
   verdict, every payment scored once, no alert id twice, copies seen as duplicates, the alert.
Exit code 0 when every check holds, 1 otherwise (the problems are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from vigil import cli_args

PROBE_TENANT = "t-dr-probe"
PROBE_BEFORE, PROBE_AFTER, PROBE_THRESHOLD = 15, 10, 20   # the 10-minute velocity window must carry 15
COPIES = 10


@dataclass
class Timeline:
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> float:
        self.marks[name] = time.time()
        return self.marks[name]

    def since(self, start: str, end: str) -> float:
        return self.marks[end] - self.marks[start]


def newest_restore_point(checkpoint_root: Path, job_id: str, savepoints: list[Path]) -> Path | None:
    """The newest complete checkpoint of the job (a `chk-N` folder holding `_metadata`; one
    without it was in progress at the loss) or savepoint, by the time `_metadata` was written."""
    candidates = [p for p in (checkpoint_root / job_id).glob("chk-*") if (p / "_metadata").exists()]
    candidates += [p for p in savepoints if (p / "_metadata").exists()]
    return max(candidates, key=lambda p: (p / "_metadata").stat().st_mtime, default=None)


def crossed_10m(evidence: str | None) -> bool:
    """The alert's evidence shows the burst's 10-minute count at the probe threshold.

    >>> crossed_10m('{"velocity": {"window": "10 min", "attempts_10m": 20}}')
    True
    >>> crossed_10m('{"attempts_10m": 10}'), crossed_10m(None)
    (False, False)
    """
    counts = [int(n) for n in re.findall(r'"attempts_10m"\s*:\s*(\d+)', evidence or "")]
    return any(n >= PROBE_THRESHOLD for n in counts)


def epoch_ms(value) -> int:
    """An event time as decoded (a datetime for timestamp-millis, UTC when naive) in epoch ms.

    >>> epoch_ms(datetime(2026, 1, 1, tzinfo=timezone.utc)), epoch_ms(datetime(2026, 1, 1)), epoch_ms(5)
    (1767225600000, 1767225600000, 5)
    """
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp() * 1000)
    return int(value)


def replayed(end_offsets: dict[int, int], committed: dict[int, int]) -> int:
    """Records after the offsets committed with the last completed checkpoint: the restored job
    reads them again (or for the first time).

    >>> replayed({0: 100, 1: 50}, {0: 90, 1: 50})
    10
    >>> replayed({0: 100}, {})
    100
    """
    return sum(end - committed.get(p, 0) for p, end in end_offsets.items())


class Traffic:
    """Generator events into the raw topic at `rate` until stopped, with a manifest of every
    delivered record (its position and the verdict the generator expects)."""

    def __init__(self, bootstrap: str, registry: str, names: dict, rate: float, folder: Path):
        self.bootstrap, self.registry, self.names, self.rate = bootstrap, registry, names, rate
        self.manifest_file = folder / "manifest.jsonl"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.stats = None
        self.error: BaseException | None = None

    def start(self) -> "Traffic":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=180)
        if self.error:
            raise self.error

    def manifest(self) -> list[dict]:
        return [json.loads(line) for line in self.manifest_file.read_text().splitlines()]

    def _run(self) -> None:
        from vigil.generator.producer import produce
        from vigil.generator.stream import EventStream, StreamSettings
        from vigil.generator.wire import EventWriter
        try:
            writer = EventWriter.registered(self.registry, self.names["raw"], with_v2=False)
            stream = EventStream(StreamSettings(seed=int(time.time()), start_ms=int(time.time() * 1000),
                                                rate=self.rate, bad_fraction=0.02), writer)
            self.stats = produce(self._until_stopped(stream.records()), self.bootstrap, self.rate,
                                 duration_s=24 * 3600, pace=True, manifest_file=self.manifest_file,
                                 topic=self.names["raw"], chargebacks_topic=self.names["chargebacks"],
                                 out=open(os.devnull, "w"))
        except BaseException as error:  # noqa: BLE001 - raised again by stop()
            self.error = error

    def _until_stopped(self, records):
        for record in records:
            if self._stop.is_set():
                return
            yield record


class Sender:
    """Hand-made raw records (the probes), with their positions recorded on delivery."""

    def __init__(self, bootstrap: str, registry: str, topic: str):
        from confluent_kafka import Producer
        from vigil.generator.wire import EventWriter
        self.topic = topic
        self.writer = EventWriter.registered(registry, topic, with_v2=False)
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        self.positions: list[tuple[int, int]] = []

    def payment(self, card: str, n: int) -> None:
        now = int(time.time() * 1000)
        record = {"event_id": f"dr-{card}-{n}", "event_time": now, "tenant_id": PROBE_TENANT,
                  "merchant_id": "m-dr", "user_id": f"u-{card}-{n}", "session_id": None,
                  "device_id": f"d-{card}-{n}", "ip": f"10.9.{n // 250}.{n % 250 + 1}",
                  "card_fingerprint": card, "event_type": "payment_attempt", "status": None,
                  "amount": Decimal("19.9900"), "currency": "USD", "country": "FR", "latitude": 48.85,
                  "longitude": 2.35, "product_id": None, "category": None, "schema_version": 1}
        self.send(f"{PROBE_TENANT}:{record['user_id']}".encode(), self.writer.event(record), now)

    def send(self, key: bytes, value: bytes, timestamp_ms: int) -> None:
        self.producer.produce(self.topic, key=key, value=value, timestamp=timestamp_ms,
                              on_delivery=lambda err, msg: err is None and self.positions.append(
                                  (msg.partition(), msg.offset())))

    def flush(self) -> None:
        if self.producer.flush(120):
            raise RuntimeError("probe records not delivered within 120 s")


def resend(bootstrap: str, topic: str, manifest_rows: list[dict], sender: Sender) -> None:
    """Copies (same key and value) of earlier records with the current record time, as a client
    that resubmits would: the de-duplication state must recognise them after the restore."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dr-resend-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    try:
        for row in manifest_rows:
            consumer.assign([TopicPartition(topic, row["partition"], row["offset"])])
            message = consumer.poll(10)
            if message is None or message.error():
                raise RuntimeError(f"could not read back {topic} {row['partition']}:{row['offset']}")
            sender.send(message.key(), message.value(), int(time.time() * 1000))
    finally:
        consumer.close()
    sender.flush()


# --- the drill ----------------------------------------------------------------------------

@dataclass
class DrillJob:
    name: str
    script: str
    args: list[str]
    job_id: str = ""
    restored_from: str | None = None   # a file: or s3: URI, what `flink run -s` takes
    from_kept_plan: bool = False       # the last submission reused the job's kept plan


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _submit_all(jobs: list[DrillJob], restore: bool, extra: list[str] = ()) -> None:
    """Submit the jobs in parallel. A restore with the flags of a kept plan submits that plan
    (seconds); otherwise `flink run` compiles the job's Python plan (10-45 s) and keeps it."""
    from vigil import flink_cluster
    from vigil.paths import PROJECT_ROOT
    errors: list[BaseException] = []

    def submit(job: DrillJob) -> None:
        try:
            script, args = PROJECT_ROOT / job.script, [*job.args, *extra]
            if restore:
                job.job_id, job.from_kept_plan = flink_cluster.restore_python_job(
                    script, args, job.restored_from, log=lambda text: _say(f"{job.name}: {text}"))
            else:
                job.job_id = flink_cluster.submit_python_job(script, args,
                                                             keep_plan=flink_cluster.kept_plan(script, args))
        except BaseException as error:  # noqa: BLE001 - raised below
            errors.append(error)
    threads = [threading.Thread(target=submit, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _all_checkpointing(jobs: list[DrillJob], timeout_s: float) -> None:
    from vigil import flink_cluster
    for job in jobs:
        flink_cluster.wait_for_checkpoints(job.job_id, 0, timeout_s=timeout_s)


def _wait_for_checkpoint_after(job_id: str, after_ms: int, timeout_s: float) -> float:
    """Until the job completed a checkpoint triggered after `after_ms`; returns that time (s)."""
    from vigil import flink_cluster, procs
    found = {}

    def done() -> bool:
        try:
            latest = flink_cluster.rest(f"/jobs/{job_id}/checkpoints")["latest"].get("completed") or {}
        except OSError:
            return False
        if (latest.get("trigger_timestamp") or 0) > after_ms:
            found["at"] = latest["latest_ack_timestamp"] / 1000
            return True
        return False
    procs.wait_until(done, timeout_s, f"job {job_id} to checkpoint again", interval=0.5)
    return found["at"]


def run(args) -> int:
    from vigil import accounting, flink_cluster, fraud_rules, kafka_broker, kafka_io, topics
    from vigil.registry import service as registry_service
    from vigil.registry.catalog import read_values
    from vigil.paths import state_dir
    from vigil.rules_cli import publish
    from vigil.savepoint_ops import take_savepoint
    from jobs import fraud_config

    bootstrap, registry = kafka_broker.BrokerSettings().bootstrap, registry_service.registry_url()
    timeline = Timeline()
    prefix = f"dr-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
    folder = state_dir() / "drills" / prefix   # outside the cluster's folder, which the loss wipes
    folder.mkdir(parents=True)
    names = topics.create_fraud_topics(bootstrap, prefix)
    names["raw"], names["ingest_dlq"] = f"{prefix}.events.raw", f"{prefix}.events.dlq"
    topics.ensure_topics(bootstrap, [topics.like(names["raw"], topics.RAW), topics.like(names["ingest_dlq"], topics.DLQ)],
                         log=lambda *_: None)
    partitions = topics.like(names["raw"], topics.RAW).partitions
    start = ";".join(f"partition:{p},offset:0" for p in range(partitions))
    # The probe tenant's own rule: a 10-minute velocity threshold the burst crosses only with the
    # payments sent before the loss counted (the 1-minute and 1-hour ones out of its reach).
    publish(bootstrap, names["rules"], fraud_rules.rule_message(
        PROBE_TENANT, {"velocity_1m": 1000, "velocity_10m": PROBE_THRESHOLD, "velocity_1h": 1000}, 0))
    interval = str(args.checkpoint_interval_ms)
    jobs = [
        DrillJob("vigil-ingest", "jobs/ingest.py", [
            "--raw-topic", names["raw"], "--clean-topic", names["clean"], "--dlq-topic", names["ingest_dlq"],
            "--transactional-id-prefix", f"{prefix}-ingest", "--group-id", f"{prefix}-ingest",
            "--start-offsets", start, "--checkpoint-interval-ms", interval]),
        DrillJob("vigil-fraud", "jobs/fraud_detection.py", fraud_config.command(
            {**names, "prefix": f"{prefix}-fraud"}, "--model-snapshot-dir", str(folder / "models"),
            "--checkpoint-interval-ms", interval)[3:]),
    ]
    store = flink_cluster.checkpoint_uri().rsplit("/", 1)[0] if flink_cluster.s3_store() else "the cluster's folders"
    _say(f"drill {prefix}: cluster {flink_cluster.home()} (REST {flink_cluster.ClusterSettings().rest_url}), "
         f"traffic {args.rate:.0f} events/s, checkpoints and savepoints in {store}")
    flink_cluster.start(taskmanagers=len(jobs), log=_say)
    if args.scenario == "scale-up":
        # The fraud job first, on one of the two slots; then ingest, which asks for two and,
        # under the adaptive scheduler, starts on the one left.
        jobs[0].args += ["--parallelism", "2"]
        _submit_all(jobs[1:], restore=False)
        _all_checkpointing(jobs[1:], 240)
        _submit_all(jobs[:1], restore=False)
    else:
        _submit_all(jobs, restore=False)
    traffic = Traffic(bootstrap, registry, {**names}, args.rate, folder).start()
    sender = Sender(bootstrap, registry, names["raw"])
    problems: list[str] = []
    try:
        _all_checkpointing(jobs, 240)
        _say("jobs running and checkpointing: " + ", ".join(f"{j.name} {j.job_id}" for j in jobs))
        card = f"card-dr-{uuid.uuid4().hex[:6]}"
        for n in range(PROBE_BEFORE):
            sender.payment(card, n)
            time.sleep(0.5)
        sender.flush()
        time.sleep(args.warmup_s)
        savepoints = {job.job_id: take_savepoint(job.job_id, stop=False).path for job in jobs}
        _say("savepoints: " + ", ".join(str(p) for p in savepoints.values()))
        # Checkpoints that hold the probes: their payments were read and decided before the loss.
        for job in jobs:
            _wait_for_checkpoint_after(job.job_id, int(time.time() * 1000), 120)
        time.sleep(args.before_loss_s)

        # --- the failure ---
        raw_end = kafka_io.end_offsets(bootstrap, names["raw"])
        clean_end = kafka_io.end_offsets(bootstrap, names["clean"])
        committed_raw = kafka_io.committed_offsets(bootstrap, f"{prefix}-ingest", names["raw"])
        committed_clean = kafka_io.committed_offsets(bootstrap, f"{prefix}-fraud", names["clean"])
        rto = SCENARIOS[args.scenario](jobs, savepoints, timeline)
        _say(f"  replayed: ingest {replayed(raw_end, committed_raw):,} raw records, "
             f"fraud {replayed(clean_end, committed_clean):,} clean events (after the offsets committed with "
             "the last checkpoint before the failure)")

        for n in range(PROBE_BEFORE, PROBE_BEFORE + PROBE_AFTER):
            sender.payment(card, n)
            time.sleep(0.5)
        early = [m for m in traffic.manifest()[:500] if m["expected"] == "clean" and m["kind"] == "session"][:COPIES]
        resend(bootstrap, names["raw"], early, sender)
        copies = sender.positions[-len(early):]
        broker_s = None
        if args.broker_kill:
            time.sleep(args.after_s / 2)
            broker_s = _broker_loss(jobs)
        time.sleep(args.after_s)
    finally:
        traffic.stop()
    stopped_ms = int(time.time() * 1000)
    manifest = traffic.manifest()
    _say(f"traffic stopped: {len(manifest):,} generator records, {len(sender.positions)} probe records")

    # --- accounting ---
    expected_total = len(manifest) + len(sender.positions)
    result = accounting.read_outcomes(bootstrap, registry, {"clean": names["clean"], "dlq": names["ingest_dlq"]},
                                      expected_total, max_wait_s=240)
    outcomes = result["outcomes"]
    positions = {(m["partition"], m["offset"]) for m in manifest} | set(sender.positions)
    problems += accounting.each_input_once(positions, outcomes, result["clean_ids"])
    wrong = accounting.wrong_verdicts(manifest, outcomes)
    if wrong:
        problems.append(f"{sum(wrong.values())} inputs got another verdict: {wrong.most_common(5)}")
    not_duplicates = [p for p in copies if outcomes.get(p) != ["duplicate"]]
    if not_duplicates:
        problems.append(f"de-duplication state lost: copies {not_duplicates} not routed as duplicates")
    # Payments the fraud job's watermark has passed (it waits a few seconds behind the newest event).
    cutoff = stopped_ms - 30_000
    payments = {e for e, v in result["clean"].items()
                if v["event_type"] == "payment_attempt" and epoch_ms(v["event_time"]) <= cutoff}
    scores = _wait_for_scores(bootstrap, registry, names["scores"], payments, 180)
    problems += accounting.each_payment_scored_once(payments, [s["event_id"] for s in scores])
    alerts = read_values(bootstrap, registry, names["alerts"])
    problems += accounting.unique_ids(alerts, "alert_id", "alert")
    # Clean events the fraud job read behind its watermark (a restore restarts ingest's watermark,
    # so some pass it): dead-lettered with their bytes; their payments are among the scores above.
    late = sum(json.loads(m.value()).get("reason") == "late_event"
               for m in kafka_io.read(bootstrap, names["dlq"], idle_timeout_s=2))
    burst = [a for a in alerts if a["tenant_id"] == PROBE_TENANT and a["event_id"].startswith(f"dr-{card}-")]
    if not any(crossed_10m(a.get("evidence")) for a in burst):
        problems.append(f"velocity window lost: no 10-minute alert for {card} (its first {PROBE_BEFORE} "
                        f"payments went in before the loss, {PROBE_AFTER} after): {burst[:2]}")
    _say(f"accounting: {len(positions):,} raw records -> {sum(map(len, outcomes.values())):,} outcomes; "
         f"{len(payments):,} payments, {len(scores):,} scores; {len(alerts):,} alerts; "
         f"{len(copies)} copies of early events -> {sum(outcomes.get(p) == ['duplicate'] for p in copies)} duplicates; "
         f"velocity burst across the loss -> {len(burst)} alert(s); {late} clean event(s) behind the fraud "
         "job's watermark, dead-lettered as late_event")
    print(json.dumps({"drill": prefix, "scenario": args.scenario, "store": "s3" if flink_cluster.s3_store() else "local",
                      "recovery_s": round(rto, 1), "broker_recovery_s": broker_s,
                      "replayed_raw": replayed(raw_end, committed_raw),
                      "replayed_clean": replayed(clean_end, committed_clean),
                      "raw_records": len(positions), "payments": len(payments), "alerts": len(alerts),
                      "late_clean_events": late,
                      "problems": problems}))
    if not args.keep_running:
        for job in jobs:
            flink_cluster.cancel(job.job_id)
    if problems:
        _say("FAILED: " + "; ".join(problems))
        return 1
    _say(f"PASSED ({args.scenario}): 0 lost, 0 duplicated; recovered in {rto:.1f} s" + (f"; broker back, jobs checkpointing after "
                                                              f"{broker_s:.1f} s" if broker_s else ""))
    return 0


def _restore_point(job_id: str, savepoint: str) -> str | None:
    """The job's newest complete checkpoint or its savepoint, whichever is newer, as a URI: from
    the S3 store (VIGIL_STATE_STORE=s3) or the cluster's folders."""
    from vigil import flink_cluster, object_store
    if flink_cluster.s3_store():
        bucket, prefix = object_store.StoreSettings().bucket, flink_cluster.home().name
        return object_store.newest_restore_point(bucket, f"{prefix}/checkpoints/{job_id}/",
                                                 [f"{prefix}/savepoints/savepoint-{job_id[:6]}"])
    found = newest_restore_point(flink_cluster.checkpoint_dir(), job_id,
                                 [Path(savepoint.removeprefix("file:"))])
    return found.as_uri() if found else None


# --- scenarios: each returns the recovery time (s), from the failure to every job checkpointing ---

def _cluster_loss(jobs: list[DrillJob], savepoints: dict[str, str], timeline: Timeline) -> float:
    """Every cluster process killed, the working files wiped, a fresh cluster, jobs restored."""
    from vigil import flink_cluster
    timeline.mark("kill")
    killed = flink_cluster.kill_all()
    wiped = flink_cluster.wipe_working_files()
    _say(f"LOSS: killed {len(killed)} cluster processes (SIGKILL), wiped {', '.join(wiped)}; "
         f"kept {', '.join(flink_cluster.durable_folders()) or 'nothing local (state and kept plans are in the S3 store)'}")
    for job in jobs:
        job.restored_from = _restore_point(job.job_id, savepoints[job.job_id])
        if job.restored_from is None:
            raise RuntimeError(f"no restore point for {job.name} {job.job_id}")
    old_ids = [job.job_id for job in jobs]
    # The JobManager first; then the TaskManagers start while the jobs' clients compile their
    # plans and submit (a submitted job waits for slots): the two longest steps overlap.
    flink_cluster.start(taskmanagers=0, log=lambda *_: None)
    timeline.mark("jobmanager")
    taskmanagers = threading.Thread(target=lambda: (flink_cluster.start_taskmanagers(len(jobs), log=lambda *_: None),
                                                    timeline.mark("taskmanagers")))
    taskmanagers.start()
    _submit_all(jobs, restore=True)
    timeline.mark("submitted")
    taskmanagers.join()
    _all_checkpointing(jobs, 240)
    timeline.mark("checkpointing")
    rto = timeline.since("kill", "checkpointing")
    _say(f"RECOVERED: RTO {rto:.1f} s (after the loss: JobManager up {timeline.since('kill', 'jobmanager'):.1f} s, "
         f"TaskManagers registered {timeline.since('kill', 'taskmanagers'):.1f} s, jobs submitted "
         f"{timeline.since('kill', 'submitted'):.1f} s, every job checkpointing {rto:.1f} s)")
    for job, old in zip(jobs, old_ids):
        _say(f"  {job.name}: {old} -> {job.job_id}, restored from {job.restored_from}"
             + (" (its kept plan)" if job.from_kept_plan else " (flink run)"))
    return rto


def _jobmanager_failover(jobs: list[DrillJob], savepoints: dict[str, str], timeline: Timeline) -> float:
    """The leading JobManager killed; the standby takes over through ZooKeeper and recovers the
    same jobs from their last checkpoints, with no action from the drill. A replacement standby
    is started afterwards, as a supervisor would."""
    from vigil import flink_cluster, procs
    import signal
    settings = flink_cluster.ClusterSettings()
    leader = flink_cluster.leading_rest_port(settings)
    pid = flink_cluster.jobmanager_pids().get(leader)
    if pid is None:
        raise RuntimeError("no leading JobManager found (is the cluster running with VIGIL_FLINK_HA=1?)")
    killed_ms = int(timeline.mark("kill") * 1000)
    procs.kill_tree(pid, signal.SIGKILL)
    _say(f"FAILURE: leading JobManager (REST port {leader}, pid {pid}) killed (SIGKILL)")
    procs.wait_until(lambda: flink_cluster.leading_rest_port(settings) not in (None, leader), 120,
                     "the standby JobManager to lead", interval=0.2)
    timeline.mark("leader")
    for job in jobs:
        flink_cluster.wait_for_recovery(job.job_id, killed_ms, timeout_s=180)
    timeline.mark("checkpointing")
    took = timeline.since("kill", "checkpointing")
    _say(f"FAILED OVER: every job checkpointing again {took:.1f} s after the kill (standby leading after "
         f"{timeline.since('kill', 'leader'):.1f} s; same job ids: {', '.join(j.job_id for j in jobs)})")
    pid_file = flink_cluster._standby_pid_file() if leader == settings.standby_rest_port else flink_cluster._jm_pid_file()
    flink_cluster.start_jobmanager(leader, pid_file, settings)
    _say(f"a new standby JobManager started on REST port {leader}")
    return took


def _rescale(jobs: list[DrillJob], savepoints: dict[str, str], timeline: Timeline) -> float:
    """Each job stopped with a savepoint and restored at parallelism 2, then again at 1, under
    traffic (TaskManagers added first for the extra slots); returns the longest stop -> checkpointing."""
    from vigil import flink_cluster
    from vigil.savepoint_ops import take_savepoint
    flink_cluster.start_taskmanagers(len(jobs), log=_say)
    timeline.mark("kill")
    longest = 0.0
    for parallelism in (2, 1):
        started = time.time()
        for job in jobs:
            job.restored_from = take_savepoint(job.job_id, stop=True).path
        _submit_all(jobs, restore=True, extra=["--parallelism", str(parallelism)])
        _all_checkpointing(jobs, 240)
        took = time.time() - started
        longest = max(longest, took)
        vertices = {job.name: _widest(job.job_id) for job in jobs}
        _say(f"RESCALED to parallelism {parallelism} in {took:.1f} s (stop with savepoint -> every job checkpointing); "
             f"widest operator per job: {vertices}")
        if any(width != parallelism for width in vertices.values()):
            raise RuntimeError(f"a job did not run at parallelism {parallelism}: {vertices}")
    return longest


def _widest(job_id: str) -> int:
    from vigil import flink_cluster
    return max(v["parallelism"] for v in flink_cluster.job(job_id)["vertices"])


def _source_rate(job_id: str, seconds: float = 20.0) -> tuple[float, float]:
    """The job's first vertex (its Kafka source and what is chained to it): records out per
    second summed over subtasks, and the busiest subtask's busy ms per second, each averaged over
    samples taken every 2 s for `seconds`. Flink's rates are 60-second moving averages: measure
    a minute after a (re)start at the earliest."""
    from vigil import flink_cluster
    vertex = flink_cluster.job(job_id)["vertices"][0]["id"]
    rates, busy = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(2)
        values = {m["id"]: m for m in flink_cluster.rest(
            f"/jobs/{job_id}/vertices/{vertex}/subtasks/metrics?get=numRecordsOutPerSecond,busyTimeMsPerSecond"
            "&agg=sum,max")}
        if "numRecordsOutPerSecond" in values and "busyTimeMsPerSecond" in values:
            rates.append(float(values["numRecordsOutPerSecond"]["sum"]))
            busy.append(float(values["busyTimeMsPerSecond"]["max"]))
    if not rates:
        raise RuntimeError(f"no source metrics for job {job_id}")
    return sum(rates) / len(rates), sum(busy) / len(busy)


def _scale_up(jobs: list[DrillJob], savepoints: dict[str, str], timeline: Timeline) -> float:
    """Adaptive scheduler: one TaskManager added while the jobs run. The ingest job, submitted at
    parallelism 2 with one slot free, runs at 1 until then and takes the new slot by itself: same
    job id, no savepoint, no resubmission. Returns seconds from the TaskManager's start until the
    job checkpoints at parallelism 2."""
    from vigil import flink_cluster, procs
    ingest = jobs[0]
    width = _widest(ingest.job_id)
    rate, busy = _source_rate(ingest.job_id)
    _say(f"BEFORE: {ingest.name} at parallelism {width}: {rate:,.0f} records/s out of its source, busiest "
         f"subtask {busy:.0f} ms/s busy")
    if width != 1:
        raise RuntimeError(f"{ingest.name} runs at parallelism {width} before the scale-up, expected 1")
    timeline.mark("kill")
    flink_cluster.start_taskmanagers(1, log=_say)
    procs.wait_until(lambda: _widest(ingest.job_id) == 2, 300, f"{ingest.name} to rescale to 2", interval=1)
    timeline.mark("rescaled")
    _wait_for_checkpoint_after(ingest.job_id, int(time.time() * 1000), 180)
    timeline.mark("checkpointing")
    took = timeline.since("kill", "checkpointing")
    time.sleep(60)   # the rates are 60 s moving averages, and the catch-up of the rescale's backlog ends
    after_rate, after_busy = _source_rate(ingest.job_id)
    _say(f"SCALED UP without a redeploy: {ingest.name} {ingest.job_id} at parallelism 2 "
         f"{timeline.since('kill', 'rescaled'):.1f} s after the TaskManager started, checkpointing {took:.1f} s "
         f"after; AFTER: {after_rate:,.0f} records/s out of its source, busiest subtask {after_busy:.0f} ms/s busy")
    return took


SCENARIOS = {"cluster-loss": _cluster_loss, "jobmanager-failover": _jobmanager_failover, "rescale": _rescale,
             "scale-up": _scale_up}


def _broker_loss(jobs: list[DrillJob]) -> float:
    """Kill the broker with SIGKILL, start it again 5 s later; returns seconds from the kill until
    every job completed a checkpoint again (with no action on the jobs)."""
    import signal
    from vigil import kafka_broker, procs
    pid = kafka_broker.pid()
    if pid is None:
        raise RuntimeError("the Kafka broker is not running")
    killed = time.time()
    procs.kill_tree(pid, signal.SIGKILL)
    procs.wait_until(lambda: not procs.is_alive(pid), 15, "the broker to die")
    _say(f"BROKER LOSS: Kafka broker {pid} killed (SIGKILL)")
    time.sleep(5)
    # After SIGKILL the broker recovers every partition's unflushed segment before it answers:
    # minutes on a broker with thousands of partitions (a test suite's), seconds on a fresh one.
    kafka_broker.start(log=lambda *_: None, timeout=600)
    _say(f"broker restarted after {time.time() - killed:.1f} s")
    back = max(_wait_for_checkpoint_after(job.job_id, int(time.time() * 1000), 300) for job in jobs)
    _say(f"jobs checkpointing again {back - killed:.1f} s after the broker loss")
    return round(back - killed, 1)


def _wait_for_scores(bootstrap: str, registry: str, topic: str, payments: set[str], timeout_s: float) -> list[dict]:
    from vigil.registry.catalog import read_values
    deadline = time.monotonic() + timeout_s
    while True:
        scores = read_values(bootstrap, registry, topic)
        if payments <= {s["event_id"] for s in scores} or time.monotonic() > deadline:
            return scores
        time.sleep(3)


def drill_store(environ: dict[str, str], go_available: bool) -> str:
    """Where the drill's checkpoints and savepoints go: VIGIL_STATE_STORE when set, else the local
    S3-compatible store (ADR 0014: the drill's premise is that only object storage survives),
    which needs `go` once to build; `local` folders without it.

    >>> drill_store({}, True), drill_store({}, False), drill_store({"VIGIL_STATE_STORE": "local"}, True)
    ('s3', 'local', 'local')
    """
    return environ.get("VIGIL_STATE_STORE") or ("s3" if go_available else "local")


def drill_environment(environ: dict[str, str], state: Path, ha: bool = False,
                      adaptive: bool = False) -> dict[str, str]:
    """The drill's own cluster: its folder and ports (VIGIL_DR_* to change them), so that the
    user's cluster and jobs are never touched; its state store (drill_store).

    >>> env = drill_environment({"VIGIL_STATE_STORE": "local"}, Path("/s"))
    >>> env["VIGIL_FLINK_STATE"], env["VIGIL_FLINK_REST_PORT"], env["VIGIL_FLINK_RPC_PORT"], env["VIGIL_STATE_STORE"]
    ('/s/flink-dr', '8091', '6131', 'local')
    """
    import shutil
    env = dict(environ)
    env["VIGIL_STATE_STORE"] = drill_store(environ, shutil.which("go") is not None)
    env["VIGIL_FLINK_STATE"] = environ.get("VIGIL_DR_FLINK_STATE", str(state / "flink-dr"))
    env["VIGIL_FLINK_REST_PORT"] = environ.get("VIGIL_DR_FLINK_REST_PORT", "8091")
    env["VIGIL_FLINK_RPC_PORT"] = environ.get("VIGIL_DR_FLINK_RPC_PORT", "6131")
    env["VIGIL_FLINK_STANDBY_REST_PORT"] = str(int(env["VIGIL_FLINK_REST_PORT"]) + 2)
    env["VIGIL_ZOOKEEPER_PORT"] = environ.get("VIGIL_DR_ZOOKEEPER_PORT", "2191")
    env["VIGIL_FLINK_HA"] = "1" if ha else "0"
    env["VIGIL_FLINK_SCHEDULER"] = "adaptive" if adaptive else "default"
    return env


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="cluster-loss",
                   help="cluster-loss: every cluster process killed and its files wiped, jobs restored on a fresh "
                        "cluster (default); jobmanager-failover: the leading JobManager killed on an HA cluster; "
                        "rescale: stop with savepoints, restore at parallelism 2, then 1; scale-up: the adaptive "
                        "scheduler, a TaskManager added while ingest runs at 1 of its 2 wanted slots")
    p.add_argument("--rate", type=cli_args.bounded(float, 0.1, 100_000), default=300.0, help="generator events per second (default 300)")
    p.add_argument("--warmup-s", type=cli_args.bounded(float, 0, 3600), default=10.0, help="traffic before the savepoints (default 10)")
    p.add_argument("--before-loss-s", type=cli_args.bounded(float, 0, 3600), default=5.0, help="traffic after them, before the loss")
    p.add_argument("--after-s", type=cli_args.bounded(float, 0, 3600), default=20.0, help="traffic after the recovery (default 20)")
    p.add_argument("--checkpoint-interval-ms", type=cli_args.bounded(int, 100, 600_000), default=2000)
    p.add_argument("--broker-kill", action="store_true",
                   help="also kill the Kafka broker (SIGKILL) under traffic after the recovery and restart it")
    p.add_argument("--keep-running", action="store_true", help="leave the restored jobs and drill cluster running")
    p.add_argument("--store", choices=["s3", "local"],
                   help="checkpoints and savepoints in the local S3-compatible store (default when `go` is installed) "
                        "or in the cluster's folders (VIGIL_STATE_STORE sets the default too)")


def add_parser(sub) -> None:
    """`vigil dr drill`: runs main() in a child process with the drill cluster's environment."""
    p = sub.add_parser("dr", help="disaster recovery: `vigil dr drill` loses the Flink cluster under traffic")
    actions = p.add_subparsers(dest="dr_action", required=True)
    drill = actions.add_parser("drill", help=__doc__.split("\n")[0])
    add_arguments(drill)
    drill.set_defaults(func=_cmd_drill)


def _cmd_drill(args) -> int:
    import subprocess
    from vigil.paths import PROJECT_ROOT, state_dir
    argv = [f"--scenario={args.scenario}", f"--rate={args.rate}", f"--warmup-s={args.warmup_s}", f"--before-loss-s={args.before_loss_s}",
            f"--after-s={args.after_s}", f"--checkpoint-interval-ms={args.checkpoint_interval_ms}",
            *(["--broker-kill"] if args.broker_kill else []), *(["--keep-running"] if args.keep_running else [])]
    environ = {**os.environ, **({"VIGIL_STATE_STORE": args.store} if args.store else {})}
    return subprocess.run([sys.executable, "-m", "vigil.dr_drill", *argv], cwd=PROJECT_ROOT,
                          env=drill_environment(environ, state_dir(),
                                                ha=args.scenario == "jobmanager-failover",
                                                adaptive=args.scenario == "scale-up")).returncode


def main(argv: list[str] | None = None) -> int:
    """Run in a process of its own (`vigil dr drill` starts it with drill_environment): the
    cluster settings are read from the environment at import."""
    p = argparse.ArgumentParser(prog="vigil dr drill", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    from vigil import flink_cluster, object_store
    if args.store:
        os.environ["VIGIL_STATE_STORE"] = args.store
    # the store outlives the drill cluster (the restore reads it); stopped here if the drill started it
    store_started_here = flink_cluster.s3_store() and not object_store.is_running()
    try:
        return run(args)
    except Exception as error:  # noqa: BLE001 - an operator reads one line, the log has the rest
        _say(f"DRILL ABORTED: {type(error).__name__}: {error}")
        # The summary line still comes, with the reason: what a test or a scheduler reads.
        print(json.dumps({"drill": None, "scenario": args.scenario, "aborted": f"{type(error).__name__}: {error}",
                          "problems": [f"drill aborted: {type(error).__name__}: {error}"]}), flush=True)
        return 4
    finally:
        if not args.keep_running:
            flink_cluster.stop(log=_say)
            if store_started_here:
                object_store.stop(log=_say)


if __name__ == "__main__":
    sys.exit(main())
