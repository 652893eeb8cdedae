"""Kafka side of `vigil generate`: paces the event stream, writes events.raw, labels and manifests.

- events.raw: key tenant_id:user_id, value wire-format Avro, record timestamp per serde's contract;
- labels.scenarios + a JSON-lines file: ground truth of every fraud-scenario event;
- labels.chargebacks: delayed ground truth of every payment attempt, as a payment system delivers
  it: a chargeback minutes after a fraudulent one, "matured" an hour after a legitimate one (see
  `chargeback_label`); key tenant_id:event_id, record timestamp = label time. Labels are held until
  the stream's event time reaches their label time (`ChargebackLabels`), so the topic carries them in
  label-time order; those still pending when the run ends are sent then, ahead of the wall clock
  (the topic accepts future timestamps);
- optionally a manifest (JSON lines): every record's partition, offset and expected verdict, so
  tests can account for each input id by id.
"""

from __future__ import annotations

import hashlib
import heapq
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


PAYMENT_ATTEMPT = "payment_attempt"


@dataclass(frozen=True)
class ChargebackSettings:
    """When a payment attempt's ground truth arrives, in seconds of event time after the attempt:
    fraud comes back as a chargeback after a delay drawn uniformly within `chargeback_delay_s`; a
    legitimate payment "matures" (no chargeback came) after `maturity_s`."""
    chargeback_delay_s: tuple[float, float] = (120.0, 1800.0)
    maturity_s: float = 3600.0

    def __post_init__(self):
        low, high = self.chargeback_delay_s
        if not 0 <= low <= high or self.maturity_s < 0:
            raise ValueError(f"need 0 <= chargeback delay low <= high and maturity >= 0: {self}")


def chargeback_label(record: Record, settings: ChargebackSettings = ChargebackSettings()) -> dict | None:
    """The delayed label of a payment attempt (session or fraud scenario), None for any other record
    (other event types, injected bad input, duplicates). The fraud delay depends on the event id
    alone, so the same stream gives the same labels.

    >>> from dataclasses import replace
    >>> attempt = Record(b"t001:u1", b"", 1_795_000_000_000, "e00000000000000a1", "t001", "clean",
    ...                  "session", event_type="payment_attempt")
    >>> chargeback_label(attempt)
    {'tenant_id': 't001', 'event_id': 'e00000000000000a1', 'event_time': 1795000000000,
     'label_time': 1795003600000, 'is_fraud': False, 'outcome': 'matured'}
    >>> chargeback_label(replace(attempt, event_type="checkout")) is None
    True
    """
    if record.event_type != PAYMENT_ATTEMPT:
        return None
    is_fraud = record.scenario is not None
    if is_fraud:
        low, high = settings.chargeback_delay_s
        delay_ms = _draw_ms(record.event_id, round(low * 1000), round(high * 1000))
    else:
        delay_ms = round(settings.maturity_s * 1000)
    return {"tenant_id": record.tenant_id, "event_id": record.event_id, "event_time": record.timestamp_ms,
            "label_time": record.timestamp_ms + delay_ms, "is_fraud": is_fraud,
            "outcome": "chargeback" if is_fraud else "matured"}


def _draw_ms(event_id: str, low_ms: int, high_ms: int) -> int:
    """A whole number in [low_ms, high_ms], uniform over event ids, the same for the same id in
    every process (a keyed hash: Python's hash() of a str is salted per process)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=b"vigil-chargeback").digest()
    return low_ms + int.from_bytes(digest, "big") % (high_ms - low_ms + 1)


class ChargebackLabels:
    """The chargeback labels of a stream, handed out when due: each is held until the stream's event
    time (the latest event time seen) reaches its label time, so they leave in label-time order, as
    a payment system sends them, and a consumer's watermark on label time sees none late.

    >>> labels = ChargebackLabels(ChargebackSettings(chargeback_delay_s=(60, 60), maturity_s=3600))
    >>> def attempt(event_id, at_ms, scenario=None):
    ...     return Record(None, None, at_ms, event_id, "t001", "clean", "session", scenario, None, "payment_attempt")
    >>> labels.after(attempt("e1", 0)), labels.after(attempt("e2", 1_000, "card_testing"))
    ([], [])
    >>> page_view = Record(None, None, 61_000, "e3", "t001", "clean", "session", event_type="page_view")
    >>> [(label["event_id"], label["outcome"], label["label_time"]) for label in labels.after(page_view)]
    [('e2', 'chargeback', 61000)]
    >>> [(label["event_id"], label["outcome"], label["label_time"]) for label in labels.drain()]  # stream ended
    [('e1', 'matured', 3600000)]
    """

    def __init__(self, settings: ChargebackSettings = ChargebackSettings()):
        self.settings = settings
        self._held: list = []   # heap of (label_time, arrival, label)
        self._arrivals = 0
        self._clock_ms = 0

    def after(self, record: Record) -> list[dict]:
        """Takes the record's label if it has one; returns the labels due now, oldest first."""
        if record.event_type == PAYMENT_ATTEMPT:  # cheap test first: this runs for every event
            label = chargeback_label(record, self.settings)
            self._arrivals += 1
            heapq.heappush(self._held, (label["label_time"], self._arrivals, label))
        if record.timestamp_ms > self._clock_ms:
            self._clock_ms = record.timestamp_ms
        return self._due(self._clock_ms) if self._held and self._held[0][0] <= self._clock_ms else []

    def drain(self) -> list[dict]:
        """Every label still held, oldest first: the stream has ended."""
        return self._due(None)

    def _due(self, now_ms: int | None) -> list[dict]:
        due = []
        while self._held and (now_ms is None or self._held[0][0] <= now_ms):
            due.append(heapq.heappop(self._held)[2])
        return due


@dataclass
class ProduceStats:
    sent: int = 0
    failed: int = 0
    fraud_events: int = 0
    bad_records: int = 0
    chargeback_labels: int = 0
    elapsed_s: float = 0.0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


def produce(records: Iterator[Record], bootstrap: str, rate: float, *, events: int | None = None,
            duration_s: float | None = None, pace: bool = True, labels_file: Path | None = None,
            manifest_file: Path | None = None, progress_every_s: float = 5.0,
            out: TextIO = sys.stderr, topic: str = topics.RAW,
            chargebacks_topic: str | None = topics.CHARGEBACKS,
            chargebacks: ChargebackSettings = ChargebackSettings()) -> ProduceStats:
    """Send records until `events` have been sent or `duration_s` has passed (one is required);
    with `chargebacks_topic` (None: off), a chargeback label for every payment attempt sent, in
    label-time order (held in memory until due: about one maturity period of payment attempts, some
    1% of events)."""
    from confluent_kafka import Producer

    if events is None and duration_s is None:
        raise ValueError("give events or duration_s")
    if chargebacks_topic:
        # The broker creates no topic on first write; callers that set up only their events topic
        # (benchmarks, tests) still get somewhere for the labels to go.
        topics.ensure_topics(bootstrap, [topics.like(chargebacks_topic, topics.CHARGEBACKS)], log=lambda *_: None)
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    stats = ProduceStats()
    labels = open(labels_file, "a") if labels_file else None
    manifest = open(manifest_file, "a") if manifest_file else None
    chargeback_labels = ChargebackLabels(chargebacks) if chargebacks_topic else None

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

    def send_chargebacks(labels: list[dict]) -> None:
        for label in labels:
            _send(producer, chargebacks_topic, f"{label['tenant_id']}:{label['event_id']}".encode(),
                  json.dumps(label).encode(), label["label_time"], on_error)
        stats.chargeback_labels += len(labels)

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
            _send(producer, topic, record.key, record.value, record.timestamp_ms,
                  on_delivery_for(record) if manifest else on_error)
            stats.sent += 1
            if chargeback_labels:
                send_chargebacks(chargeback_labels.after(record))
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
        if chargeback_labels:
            send_chargebacks(chargeback_labels.drain())
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


def _send(producer, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int, on_delivery) -> None:
    """Produce one record, serving delivery reports while the local queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, timestamp=timestamp_ms, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def _write_label(producer, labels: TextIO, record: Record) -> None:
    label = json.dumps({"event_id": record.event_id, "scenario": record.scenario, "instance": record.instance,
                        "tenant_id": record.tenant_id, "event_time": record.timestamp_ms})
    labels.write(label + "\n")
    producer.produce(topics.LABELS, key=(record.instance or "").encode(), value=label.encode(),
                     timestamp=record.timestamp_ms)
