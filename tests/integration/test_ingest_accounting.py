"""Real broker, real Flink (MiniCluster): generated traffic with every kind of bad input goes
through the ingest job, and every input is accounted for exactly once, id by id."""

from __future__ import annotations

import json

from fastavro.schema import to_parsing_canonical_form

from tests.ingest_checks import (assert_each_input_exactly_once, produce_with_manifest, read_outcomes,
                                 run_bounded_ingest)
from udfs.validation import REASONS
from vigil import kafka_io, serde
from vigil.registry.catalog import RegistrySchemaCatalog
from vigil.registry.client import RegistryClient
from vigil.registry.service import registry_url


def test_every_input_lands_once_in_clean_or_dlq_with_its_reason(kafka, ingest_topics, tmp_path):
    start = kafka_io.end_offsets(kafka, ingest_topics["raw"])
    manifest = produce_with_manifest(kafka, ingest_topics["raw"], 20_000, tmp_path, bad_fraction=0.08)
    end = kafka_io.end_offsets(kafka, ingest_topics["raw"])
    assert sum(end.values()) - sum(start.values()) == len(manifest) == 20_000

    run_bounded_ingest(ingest_topics, start, end, "--checkpoint-interval-ms", "1000")

    result = read_outcomes(kafka, ingest_topics, len(manifest), max_wait_s=30)
    by_reason = assert_each_input_exactly_once(manifest, result)
    assert by_reason["clean"] > 18_000
    validation_reasons = set(REASONS) - {"late_event", "internal_error"}  # a bug never met here
    assert validation_reasons <= set(by_reason), f"reasons never seen: {validation_reasons - set(by_reason)}"

    # Each clean event is in its raw record's partition number (SourcePartitionPartitioner), so a
    # clean partition keeps one raw partition's order whatever partitioner the producer used.
    catalog = RegistrySchemaCatalog(registry_url())
    moved = [(m.partition(), event["source_partition"]) for m in kafka_io.read(kafka, ingest_topics["clean"], idle_timeout_s=2)
             if m.partition() != (event := serde.decode_as_written(m.value(), catalog))["source_partition"]]
    assert moved == [], f"{len(moved)} clean events not in their raw partition, e.g. {moved[:5]}"

    # vigil/schemas/clean-event.avsc (what tests and tools write clean events with) must stay
    # what Flink's avro-confluent format derives from the clean_events table and registers.
    registered = json.loads(RegistryClient(registry_url()).version(f"{ingest_topics['clean']}-value")["schema"])
    assert to_parsing_canonical_form(registered) == to_parsing_canonical_form(serde.load_schema("clean-event.avsc"))
