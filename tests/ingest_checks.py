"""Helpers shared by the ingest integration and failure tests: produce with a manifest, read
the committed outcome of every input, and check that each input left exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from vigil.kafka_io import format_offsets
from vigil import kafka_io
from vigil.generator.producer import produce
from vigil.generator.stream import EventStream, StreamSettings
from vigil.generator.wire import EventWriter
from vigil.paths import PROJECT_ROOT
from vigil.registry.catalog import value_decoder
from vigil.registry.service import registry_url


def produce_with_manifest(bootstrap: str, topic: str, events: int, tmp_path: Path, *, seed: int = 1,
                          rate: float = 5000.0, bad_fraction: float = 0.05, pace: bool = False,
                          v2_fraction: float = 0.0) -> list[dict]:
    """Produce like `vigil generate` does (schemas registered, registry ids in every record)."""
    manifest = tmp_path / f"manifest-{topic}-{uuid.uuid4().hex[:6]}.jsonl"  # this call's records only
    writer = EventWriter.registered(registry_url(), topic, with_v2=v2_fraction > 0)
    stream = EventStream(StreamSettings(seed=seed, start_ms=int(time.time() * 1000), rate=rate,
                                        bad_fraction=bad_fraction, v2_fraction=v2_fraction), writer)
    stats = produce(stream.records(), bootstrap, rate, events=events, pace=pace, manifest_file=manifest,
                    topic=topic, labels_file=tmp_path / "labels.jsonl")
    assert stats.failed == 0, stats.first_error
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def ingest_args(names: dict, *extra: str) -> list[str]:
    return ["--raw-topic", names["raw"], "--clean-topic", names["clean"], "--dlq-topic", names["dlq"],
            "--transactional-id-prefix", names["prefix"], "--group-id", names["prefix"], *extra]


def run_bounded_ingest(names: dict, start: dict, end: dict, *extra: str) -> None:
    cmd = [sys.executable, "-m", "jobs.ingest", *ingest_args(names, "--start-offsets", format_offsets(start),
                                                             "--stop-offsets", format_offsets(end), *extra)]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def read_outcomes(bootstrap: str, names: dict, expected_total: int, max_wait_s: float = 120) -> dict:
    """(partition, offset) of every raw input -> list of outcomes ("clean" or a DLQ reason),
    plus the clean event ids, read with read_committed; waits until `expected_total` arrived."""
    outcomes: dict[tuple[int, int], list[str]] = {}
    clean_ids: list[str] = []
    clean: dict[str, dict] = {}  # event_id -> the event as written to events.clean
    deadline = time.monotonic() + max_wait_s
    clean_start: dict = {}
    dlq_start: dict = {}
    decode_clean = value_decoder(registry_url())  # events.clean is avro-confluent
    while True:
        for message in kafka_io.read(bootstrap, names["clean"], clean_start, idle_timeout_s=2):
            value = decode_clean(message.value())
            outcomes.setdefault((value["source_partition"], value["source_offset"]), []).append("clean")
            clean_ids.append(value["event_id"])
            clean[value["event_id"]] = value
            clean_start[message.partition()] = message.offset() + 1
        for message in kafka_io.read(bootstrap, names["dlq"], dlq_start, idle_timeout_s=2):
            value = json.loads(message.value())
            outcomes.setdefault((value["source_partition"], value["source_offset"]), []).append(value["reason"])
            dlq_start[message.partition()] = message.offset() + 1
        if sum(map(len, outcomes.values())) >= expected_total or time.monotonic() > deadline:
            return {"outcomes": outcomes, "clean_ids": clean_ids, "clean": clean}
        time.sleep(1)


def assert_each_input_exactly_once(manifest: list[dict], result: dict) -> Counter:
    """Every input is in clean or dlq exactly once, with the verdict the generator expects;
    returns the count of outcomes per reason."""
    outcomes, clean_ids = result["outcomes"], result["clean_ids"]
    positions = {(m["partition"], m["offset"]) for m in manifest}
    missing = positions - outcomes.keys()
    extra = outcomes.keys() - positions
    repeated = {k: v for k, v in outcomes.items() if len(v) > 1}
    assert not missing, f"{len(missing)} inputs lost, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} outputs with no input, e.g. {sorted(extra)[:5]}"
    assert not repeated, f"{len(repeated)} inputs written twice, e.g. {list(repeated.items())[:5]}"
    assert len(clean_ids) == len(set(clean_ids)), "an event_id reached events.clean twice"
    wrong = []
    for m in manifest:
        got = outcomes[(m["partition"], m["offset"])][0]
        allowed = {"late_event", "clean"} if m["expected"] == "late_event" else {m["expected"]}
        if got not in allowed:
            wrong.append((m["kind"], m["expected"], got))
    assert not wrong, f"{len(wrong)} inputs got another verdict: {Counter(wrong).most_common(5)}"
    return Counter(v[0] for v in outcomes.values())
