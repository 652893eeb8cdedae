"""Failure: the ingest job runs on the local standalone cluster while traffic flows; its
TaskManager is killed with SIGKILL twice and replaced; Flink restores from the last checkpoint.
No input may be lost and none may be written twice in the committed output. Afterwards, the
de-duplication state that survived both restores still recognises copies of early events, and
events far behind the watermark are routed as late."""

from __future__ import annotations

import signal
import threading
import time

from confluent_kafka import Producer

from tests.ingest_checks import assert_each_input_exactly_once, ingest_args, produce_with_manifest, read_outcomes
from tests.scenarios import event, wire
from vigil import flink_cluster, procs
from vigil.generator.wire import EventWriter
from vigil.paths import PROJECT_ROOT
from vigil.registry.service import registry_url

EVENTS = 30_000
RATE = 1500.0


def _kill_taskmanager_and_replace(job_id: str) -> None:
    completed = flink_cluster.checkpoint_counts(job_id)["completed"]
    victims = flink_cluster.taskmanager_pids()
    assert victims, "no TaskManager to kill"
    procs.kill_tree(victims[0], signal.SIGKILL)  # the TaskManager and any Python worker it runs
    procs.wait_until(lambda: not procs.is_alive(victims[0]), 10, "the TaskManager to die")
    flink_cluster.start_taskmanager(log=lambda *_: None)
    # Recovered = running again and checkpointing after the restore.
    flink_cluster.wait_for_checkpoints(job_id, completed, timeout_s=120)


def test_no_loss_no_duplicate_after_two_taskmanager_kills(flink, kafka, ingest_topics, tmp_path):
    job_id = flink_cluster.submit_python_job(
        PROJECT_ROOT / "jobs" / "ingest.py",
        ingest_args(ingest_topics, "--checkpoint-interval-ms", "1000", "--start-offsets",
                    "partition:0,offset:0;partition:1,offset:0;partition:2,offset:0;partition:3,offset:0"))
    try:
        flink_cluster.wait_for_checkpoints(job_id, 0, timeout_s=120)
        produced: list = []
        producer = threading.Thread(target=lambda: produced.extend(produce_with_manifest(
            kafka, ingest_topics["raw"], EVENTS, tmp_path, seed=3, rate=RATE, bad_fraction=0.03, pace=True)))
        producer.start()
        time.sleep(5)
        _kill_taskmanager_and_replace(job_id)
        time.sleep(3)
        _kill_taskmanager_and_replace(job_id)
        producer.join(timeout=120)
        assert len(produced) == EVENTS

        result = read_outcomes(kafka, ingest_topics, EVENTS, max_wait_s=180)
        by_reason = assert_each_input_exactly_once(produced, result)
        assert flink_cluster.checkpoint_counts(job_id)["restored"] >= 2
        assert by_reason["clean"] > 0.9 * EVENTS

        # After both restores: copies of early events are still known, and old events are late.
        # Watermarks are not part of checkpoints: they rebuild from what is read after a restore,
        # so fresh traffic flows first (as it would in production) before the late events.
        fresh = produce_with_manifest(kafka, ingest_topics["raw"], 3000, tmp_path, seed=4, rate=RATE,
                                      bad_fraction=0.0, pace=True)
        read_outcomes(kafka, ingest_topics, EVENTS + len(fresh), max_wait_s=60)
        early = [m for m in produced[:200] if m["expected"] == "clean" and m["kind"] == "session"][:10]
        late = [event(id=f"late-{i}", tenant="t001", user=f"u{i}", at_ms=int(time.time() * 1000) - 600_000)
                for i in range(10)]
        copies = _resend_by_position(kafka, ingest_topics["raw"], early)
        producer = Producer({"bootstrap.servers": kafka})
        writer = EventWriter.registered(registry_url(), ingest_topics["raw"], with_v2=False)
        late_positions = []
        for record in late:
            key, value = wire(record, writer)
            producer.produce(ingest_topics["raw"], key=key, value=value, timestamp=record["event_time"],
                             on_delivery=lambda error, message: late_positions.append((message.partition(), message.offset())))
        producer.flush(10)
        result = read_outcomes(kafka, ingest_topics, EVENTS + len(fresh) + len(early) + len(late), max_wait_s=60)
        # Exactly these copies of events that were clean before both kills are duplicates: the
        # de-duplication state came through the restores (the generator's own duplicates do not count).
        assert len(early) == len(copies) == 10
        assert {position: result["outcomes"].get(position) for position in copies} == \
            {position: ["duplicate"] for position in copies}
        assert {position: result["outcomes"].get(position) for position in late_positions} == \
            {position: ["late_event"] for position in late_positions}
    finally:
        flink_cluster.cancel(job_id)


def _resend_by_position(bootstrap: str, topic: str, manifest_rows: list[dict]) -> list[tuple[int, int]]:
    """Send copies (same key and value) of earlier records, as a client that resubmits would;
    returns the copies' (partition, offset). They carry the current record timestamp: with their
    original one they would be behind the watermark and routed as late_event before reaching the
    de-duplication, and the test would say nothing about its state."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "resend", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap})
    copies: list[tuple[int, int]] = []
    for row in manifest_rows:
        consumer.assign([TopicPartition(topic, row["partition"], row["offset"])])
        message = consumer.poll(10)
        assert message is not None and not message.error()
        producer.produce(topic, key=message.key(), value=message.value(), timestamp=int(time.time() * 1000),
                         on_delivery=lambda error, copy: copies.append((copy.partition(), copy.offset())))
    producer.flush(10)
    consumer.close()
    return copies
