"""Benchmark: how many events per second `vigil generate` produces from one Python process.

Prints, on this machine: (1) events/s of the generator alone (building + Avro encoding, no I/O),
(2) sustained events/s into Kafka with every record acknowledged (acks=all, idempotent
producer, lz4), unpaced, to a fresh topic; and the producer process's peak RSS.

    .venv/bin/python bench/generator.py [--events 500000] [--bad-fraction 0.02]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vigil import kafka_broker, topics  # noqa: E402
from vigil.generator.producer import produce  # noqa: E402
from vigil.generator.stream import EventStream, StreamSettings  # noqa: E402
from vigil.generator.wire import EventWriter  # noqa: E402
from vigil.registry import service as registry_service  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--bad-fraction", type=float, default=0.02)
    args = parser.parse_args()
    settings = StreamSettings(seed=1, start_ms=int(time.time() * 1000), rate=50_000.0,
                              bad_fraction=args.bad_fraction)

    n = min(args.events, 200_000)
    started = time.perf_counter()
    payload_bytes = sum(len(r.value or b"") for r in itertools.islice(EventStream(settings).records(), n))
    gen_s = time.perf_counter() - started
    print(f"generator alone: {n:,} events in {gen_s:.1f}s = {n / gen_s:,.0f} events/s "
          f"(mean value {payload_bytes / n:,.0f} bytes)")

    kafka_broker.start(log=lambda *_: None)
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    topic = f"bench-generator-{uuid.uuid4().hex[:6]}"
    topics.ensure_topics(bootstrap, [topics.TopicSpec(topic, config={"max.message.bytes": "2097152"})],
                         log=lambda *_: None)
    registry_service.start(bootstrap, log=lambda *_: None)
    writer = EventWriter.registered(registry_service.registry_url(), topic, with_v2=False)
    stats = produce(EventStream(settings, writer).records(), bootstrap, settings.rate, events=args.events,
                    pace=False, topic=topic, progress_every_s=1e9)
    print(f"into Kafka ({topic}, {topics.TopicSpec(topic).partitions} partitions, acks=all): "
          f"{stats.sent:,} events in {stats.elapsed_s:.1f}s = {stats.rate:,.0f} events/s sustained, "
          f"{stats.failed} failed")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"producer process peak RSS: {peak:,.0f} MiB")
    from confluent_kafka.admin import AdminClient
    AdminClient({"bootstrap.servers": bootstrap}).delete_topics([topic])


if __name__ == "__main__":
    main()
