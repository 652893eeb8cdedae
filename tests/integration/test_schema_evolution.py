"""Schema evolution without downtime, on the real broker, registry and a running ingest job:
v1 producers first; then, with the job still running, v2 is registered and mixed v1/v2 traffic
flows. No restart, no valid event rejected, and v2's fields reach events.clean."""

from __future__ import annotations

import subprocess
import sys
import zlib

from confluent_kafka.schema_registry import SchemaRegistryClient

from vigil.kafka_io import format_offsets
from tests.ingest_checks import assert_each_input_exactly_once, ingest_args, produce_with_manifest, read_outcomes
from vigil import procs, topics
from vigil.generator.stream import LOYALTY_TIERS, PAYMENT_METHODS
from vigil.paths import PROJECT_ROOT


def test_v2_producers_join_while_the_ingest_job_runs(kafka, schema_registry, ingest_topics, tmp_path):
    registry = SchemaRegistryClient({"url": schema_registry})
    subject = f"{ingest_topics['raw']}-value"
    v1_traffic = produce_with_manifest(kafka, ingest_topics["raw"], 3000, tmp_path, seed=11, bad_fraction=0.05)
    assert registry.get_versions(subject) == [1]

    partitions = topics.TopicSpec(ingest_topics["raw"]).partitions
    log = open(tmp_path / "ingest.log", "w")
    job = subprocess.Popen(
        [sys.executable, "-m", "jobs.ingest", *ingest_args(
            ingest_topics, "--checkpoint-interval-ms", "1000",
            "--start-offsets", format_offsets({p: 0 for p in range(partitions)}))],
        cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        read_outcomes(kafka, ingest_topics, len(v1_traffic), max_wait_s=240)
        assert job.poll() is None, "the job stopped"

        # The roll-out: producers register v2 and write it for half of their events, live.
        mixed_traffic = produce_with_manifest(kafka, ingest_topics["raw"], 3000, tmp_path, seed=12,
                                              bad_fraction=0.05, v2_fraction=0.5)
        assert registry.get_versions(subject) == [1, 2]
        everything = v1_traffic + mixed_traffic
        result = read_outcomes(kafka, ingest_topics, len(everything), max_wait_s=180)
        assert job.poll() is None, "the job restarted or stopped during the roll-out"
    finally:
        procs.kill_tree(job.pid)
        job.wait(timeout=30)
        log.close()

    # Every input exactly once, each with the verdict the generator expects: no v2 event rejected.
    by_reason = assert_each_input_exactly_once(everything, result)
    assert "schema_mismatch" in by_reason  # the foreign schema is still refused, by field
    clean = result["clean"]
    v2 = [e for e in clean.values() if e["schema_version"] == 2]
    v1 = [e for e in clean.values() if e["schema_version"] == 1]
    mixed_ids = {m["event_id"] for m in mixed_traffic if m["expected"] == "clean"}
    assert 0.4 < len(v2) / len(mixed_ids) < 0.6, (len(v2), len(mixed_ids))
    assert all(e["event_id"] in mixed_ids for e in v2)  # v2 appeared only after the roll-out

    # v2 fields arrive with the values producers wrote (stable per user and card)...
    for event in v2:
        assert event["loyalty_tier"] == LOYALTY_TIERS[zlib.crc32(event["user_id"].encode()) % len(LOYALTY_TIERS)]
        card = event["card_fingerprint"]
        expected = PAYMENT_METHODS[zlib.crc32(card.encode()) % len(PAYMENT_METHODS)] if card else None
        assert event["payment_method"] == expected
    assert any(e["payment_method"] for e in v2)
    # ...and v1 records read as v2 get the defaults.
    assert v1 and all(e["payment_method"] is None and e["loyalty_tier"] is None for e in v1)
