"""Kafka side of `vigil generate`: paces the event stream, writes events.raw, labels and manifests.

- events.raw: key tenant_id:user_id, value wire-format Avro, record timestamp per serde's contract;
- labels.scenarios + a JSON-lines file: ground truth of every fraud-scenario event;
- optionally a manifest (JSON lines): every record's partition, offset and expected verdict, so
  tests can account for each input id by id.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from vigil import topics
from vigil.generator.stream import Record

PRODUCER_CONFIG = {
    "acks": "all",
    "enable.idempotence": True,        # broker-side de-duplication of retries
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "message.max.bytes": 2_000_000,    # oversized test payloads must reach the broker
    # The Java client's partitioner (murmur2), which Flink's Kafka sink uses too: a key lands in
    # the same partition of events.raw and events.clean, so each clean partition keeps the event
    # order of its raw partition even when ingest drains a backlog (librdkafka's default, CRC32,
    # would mix raw partitions into each clean partition and make downstream events late).
    "partitioner": "murmur2_random",
}


@dataclass
class ProduceStats:
    sent: int = 0
    failed: int = 0
    fraud_events: int = 0
    bad_records: int = 0
    elapsed_s: float = 0.0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


def produce(records: Iterator[Record], bootstrap: str, rate: float, *, events: int | None = None,
            duration_s: float | None = None, pace: bool = True, labels_file: Path | None = None,
            manifest_file: Path | None = None, progress_every_s: float = 5.0,
            out: TextIO = sys.stderr, topic: str = topics.RAW) -> ProduceStats:
    """Send records until `events` have been sent or `duration_s` has passed (one is required)."""
    from confluent_kafka import Producer

    if events is None and duration_s is None:
        raise ValueError("give events or duration_s")
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    stats = ProduceStats()
    labels = open(labels_file, "a") if labels_file else None
    manifest = open(manifest_file, "a") if manifest_file else None

    def on_error(err, msg):
        if err is not None:
            stats.failed += 1
            stats.first_error = stats.first_error or str(err)

    def on_delivery_for(record: Record):
        def on_delivery(err, msg):
            on_error(err, msg)
            if err is None:
                manifest.write(json.dumps({
                    "partition": msg.partition(), "offset": msg.offset(), "event_id": record.event_id,
                    "expected": record.expected, "kind": record.kind, "scenario": record.scenario}) + "\n")
        return on_delivery

    start = time.monotonic()
    next_progress = start + progress_every_s
    try:
        for record in records:
            now = time.monotonic()
            if (events is not None and stats.sent >= events) or (duration_s is not None and now - start >= duration_s):
                break
            if pace:
                ahead = start + stats.sent / rate - now
                if ahead > 0.002:
                    producer.poll(0)
                    time.sleep(ahead)
            callback = on_delivery_for(record) if manifest else on_error
            while True:
                try:
                    producer.produce(topic, key=record.key, value=record.value,
                                     timestamp=record.timestamp_ms, on_delivery=callback)
                    break
                except BufferError:
                    producer.poll(0.05)
            stats.sent += 1
            if record.scenario:
                stats.fraud_events += 1
                if labels:
                    _write_label(producer, labels, record)
            if record.kind not in ("session",) and record.scenario is None:
                stats.bad_records += 1
            if stats.sent % 1000 == 0:
                producer.poll(0)
                if time.monotonic() >= next_progress:
                    next_progress += progress_every_s
                    elapsed = time.monotonic() - start
                    print(f"  generate: {stats.sent:,} events in {elapsed:.0f}s ({stats.sent / elapsed:,.0f}/s), "
                          f"{stats.fraud_events:,} fraud, {stats.bad_records:,} bad", file=out, flush=True)
        remaining = producer.flush(60)
        if remaining:
            stats.failed += remaining
            stats.first_error = stats.first_error or f"{remaining} records not delivered within 60s"
    finally:
        stats.elapsed_s = time.monotonic() - start
        for handle in (labels, manifest):
            if handle:
                handle.close()
    return stats


def _write_label(producer, labels: TextIO, record: Record) -> None:
    label = json.dumps({"event_id": record.event_id, "scenario": record.scenario, "instance": record.instance,
                        "tenant_id": record.tenant_id, "event_time": record.timestamp_ms})
    labels.write(label + "\n")
    producer.produce(topics.LABELS, key=(record.instance or "").encode(), value=label.encode(),
                     timestamp=record.timestamp_ms)
