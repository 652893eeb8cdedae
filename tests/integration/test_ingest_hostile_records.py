"""The worst records we know through the real ingest job (real broker, registry, Flink): a record
whose schema id names a registered schema of every other kind (primitives, enum, array, map, fixed,
union, records of other names and shapes, a recursive one), random and truncated bytes, unknown
ids, NaN coordinates, huge and negative amounts, extreme timestamps, hostile identifiers, a
tombstone, a 60 KB field, an oversized payload, wrong keys, and valid events among them. The job
runs with restarts disabled, so one failure would fail the run: it must finish with every record
in events.clean or events.dlq exactly once, with the reason tests/hostile_records.py expects."""

from __future__ import annotations

import time
from collections import Counter

from confluent_kafka import Producer

from tests.hostile_records import hostile_records, register_other_schemas
from tests.ingest_checks import read_outcomes, run_bounded_ingest
from vigil import kafka_io, serde
from vigil.registry.client import RegistryClient


def test_hostile_records_are_each_accounted_for_once_and_the_job_never_restarts(kafka, schema_registry, ingest_topics):
    client = RegistryClient(schema_registry)
    other_ids = register_other_schemas(client.register, prefix=f"{ingest_topics['prefix']}.hostile")
    subject = f"{ingest_topics['raw']}-value"
    v1_id, v2_id = (client.register(subject, serde.load_schema(f)) for f in ("event-v1.avsc", "event-v2.avsc"))
    records = hostile_records(other_ids, v1_id, v2_id, now_ms=int(time.time() * 1000))

    start = kafka_io.end_offsets(kafka, ingest_topics["raw"])
    positions: dict[tuple[int, int], object] = {}
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random", "message.max.bytes": 2_000_000})
    for record in records:
        def delivered(error, message, record=record):
            assert error is None, error
            positions[(message.partition(), message.offset())] = record
        producer.produce(ingest_topics["raw"], key=record.key, value=record.value, timestamp=record.timestamp_ms,
                         on_delivery=delivered)
    assert producer.flush(30) == 0 and len(positions) == len(records)
    end = kafka_io.end_offsets(kafka, ingest_topics["raw"])

    run_bounded_ingest(ingest_topics, start, end, "--max-restarts", "0")  # any failure fails the run

    outcomes = read_outcomes(kafka, ingest_topics, len(records))["outcomes"]
    assert set(outcomes) == set(positions), "a record was lost or one appeared from nowhere"
    assert not {p: o for p, o in outcomes.items() if len(o) > 1}, "a record was written twice"
    wrong = [(r.description, r.expected, outcomes[p][0]) for p, r in positions.items()
             if outcomes[p][0] != (r.expected or "clean")]
    assert not wrong, wrong
    by_reason = Counter(o[0] for o in outcomes.values())
    assert by_reason["schema_mismatch"] >= len(other_ids) and by_reason["clean"] > 0
    assert "internal_error" not in by_reason
    print(f"\n{len(records)} hostile records through the ingest job: {dict(sorted(by_reason.items()))}")
