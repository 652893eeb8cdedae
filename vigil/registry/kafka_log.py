"""The registry's durable log: a compacted, single-partition Kafka topic (`_schemas`).

Every instance tails the topic from the beginning into its RegistryState; writes go to the
topic and count once read back, in log order (store.py explains how races resolve). So the
state survives restarts, and two instances serve the same ids.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from vigil import kafka_io, topics
from vigil.registry.store import RegistryError, RegistryState

TOPIC = "_schemas"


class KafkaLog:
    def __init__(self, bootstrap: str, topic: str = TOPIC):
        from confluent_kafka import Consumer, Producer, TopicPartition

        self.topic = topic
        self._bootstrap = bootstrap
        topics.ensure_topics(bootstrap, [topics.TopicSpec(topic, partitions=1, config={
            "cleanup.policy": "compact", "min.insync.replicas": "1"})], log=lambda *_: None)
        self.state = RegistryState()
        self.lock = threading.Condition()
        self.applied = -1  # offset of the last record applied
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"registry-{uuid.uuid4().hex}",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, daemon=True, name="schemas-log")
        self._thread.start()
        self.wait_until_caught_up()

    def _tail(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None or message.error():
                continue
            key = json.loads(message.key())
            value = json.loads(message.value()) if message.value() is not None else None
            with self.lock:
                self.state.apply(key, value)
                self.applied = message.offset()
                self.lock.notify_all()

    def wait_until_caught_up(self, timeout_s: float = 30.0) -> None:
        """Block until everything in the log when this is called has been applied."""
        # A separate client: the tailing consumer is busy in its own thread.
        end = kafka_io.end_offsets(self._bootstrap, self.topic)[0]
        self._wait_for(end - 1, timeout_s)

    def _wait_for(self, offset: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while self.applied < offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RegistryError(500, 50002, "timed out waiting for the schemas log")
                self.lock.wait(remaining)

    def append(self, records: list[tuple[dict, dict | None]]) -> bool:
        """Write records, wait until applied; True if all of them took effect."""
        offsets: list[int] = []
        errors: list[str] = []

        def delivered(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                offsets.append(msg.offset())
        for key, value in records:
            self._producer.produce(self.topic, key=json.dumps(key, sort_keys=True).encode(),
                                   value=None if value is None else json.dumps(value).encode(),
                                   on_delivery=delivered)
        self._producer.flush(30)
        if errors or len(offsets) != len(records):
            raise RegistryError(500, 50001, f"could not write to the schemas log: {errors[:1]}")
        self._wait_for(max(offsets), 30)
        with self.lock:
            return all(self.state.took_effect(key, value) for key, value in records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()
