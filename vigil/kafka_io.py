"""Reading topics back: offsets snapshots and bounded, read_committed reads (tests, demo, bench).

Jobs write with Kafka transactions, so every reader here uses isolation.level=read_committed and
sees only what a completed checkpoint committed.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

Offsets = dict[int, int]


def _consumer(bootstrap: str, **extra):
    from confluent_kafka import Consumer
    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"vigil-reader-{uuid.uuid4().hex[:8]}",
                     "isolation.level": "read_committed", "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "fetch.max.bytes": 16 * 1024 * 1024,
                     "max.partition.fetch.bytes": 8 * 1024 * 1024,
                     "queued.max.messages.kbytes": 32 * 1024, **extra})


def end_offsets(bootstrap: str, topic: str) -> Offsets:
    """High watermarks per partition now (the start of "what comes next")."""
    from confluent_kafka import TopicPartition
    from confluent_kafka import KafkaException
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        deadline = time.monotonic() + 30
        while True:
            try:
                return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in partitions}
            except KafkaException:  # a new topic's leaders settle within seconds
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def format_offsets(offsets: dict[int, int]) -> str:
    """Offsets in the Kafka connector's 'scan.startup.specific-offsets' syntax.

    >>> format_offsets({1: 7, 0: 42})
    'partition:0,offset:42;partition:1,offset:7'
    """
    return ";".join(f"partition:{p},offset:{o}" for p, o in sorted(offsets.items()))


def committed_offsets(bootstrap: str, group: str, topic: str) -> Offsets:
    """A consumer group's committed offsets per partition (a job's progress: Flink commits its
    source offsets on each checkpoint). Partitions without one, or answered with an error, are
    left out; a coordinator that cannot answer at all raises KafkaException."""
    from confluent_kafka import TopicPartition
    consumer = _consumer(bootstrap, **{"group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        answers = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in answers if tp.error is None and tp.offset >= 0}
    finally:
        consumer.close()


def read(bootstrap: str, topic: str, start: Offsets | None = None, idle_timeout_s: float = 5.0,
         max_wait_s: float = 120.0, until_count: int | None = None) -> Iterator:
    """Committed messages from `start` (default: the beginning) up to the end offsets seen at the
    call, or until `until_count` messages were read; stops after `idle_timeout_s` without news."""
    from confluent_kafka import TopicPartition
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        start = start or {}
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in partitions])
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        count, deadline, last_news = 0, time.monotonic() + max_wait_s, time.monotonic()
        while time.monotonic() < deadline:
            if until_count is not None and count >= until_count:
                return
            message = consumer.poll(0.5)
            if message is None or message.error():
                if until_count is None and _reached(consumer, topic, start, ends):
                    return
                if time.monotonic() - last_news > idle_timeout_s:
                    return
                continue
            last_news = time.monotonic()
            count += 1
            yield message
    finally:
        consumer.close()


def _reached(consumer, topic: str, start: Offsets, ends: Offsets) -> bool:
    """Every partition's position is at its end offset (transaction markers count as read)."""
    from confluent_kafka import TopicPartition
    for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
        position = tp.offset if tp.offset >= 0 else start.get(tp.partition, 0)  # nothing fetched yet
        if position < ends[tp.partition]:
            return False
    return True


def offsets_at(bootstrap: str, topic: str, timestamp_ms: int) -> Offsets:
    """Per partition, the first offset whose record timestamp is at or after `timestamp_ms`, or
    the end offset when there is none (Kafka's offsetsForTimes; what Flink's Kafka source does
    with 'scan.startup.mode' / 'scan.bounded.mode' = 'timestamp')."""
    from confluent_kafka import TopicPartition
    ends = end_offsets(bootstrap, topic)
    consumer = _consumer(bootstrap)
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, p, int(timestamp_ms)) for p in ends], timeout=30)
        return {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}
    finally:
        consumer.close()


def read_range(bootstrap: str, topic: str, start: Offsets, stop: Offsets, batch: int = 5000,
               idle_timeout_s: float = 30.0) -> Iterator:
    """Committed messages of each partition from `start` up to (not including) `stop`, in batches
    (a fast path for ranges of millions of records); stops early after `idle_timeout_s` without
    news."""
    from confluent_kafka import TopicPartition
    wanted = {p: o for p, o in stop.items() if start.get(p, 0) < o}
    if not wanted:
        return
    consumer = _consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
        last_news = time.monotonic()
        while True:
            messages = consumer.consume(num_messages=batch, timeout=0.5)
            for message in messages:
                if message.error() is None and message.offset() < wanted[message.partition()]:
                    yield message
            if messages:
                last_news = time.monotonic()
            if _reached(consumer, topic, start, wanted) or time.monotonic() - last_news > idle_timeout_s:
                return
    finally:
        consumer.close()
