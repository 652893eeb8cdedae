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
from vigil import accounting
from vigil.generator.producer import produce
from vigil.generator.stream import EventStream, StreamSettings
from vigil.generator.wire import EventWriter
from vigil.paths import PROJECT_ROOT
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
    """vigil.accounting.read_outcomes with the test registry."""
    return accounting.read_outcomes(bootstrap, registry_url(), names, expected_total, max_wait_s)


def assert_each_input_exactly_once(manifest: list[dict], result: dict) -> Counter:
    """Every input is in clean or dlq exactly once, with the verdict the generator expects;
    returns the count of outcomes per reason."""
    outcomes = result["outcomes"]
    problems = accounting.each_input_once({(m["partition"], m["offset"]) for m in manifest}, outcomes,
                                          result["clean_ids"])
    assert not problems, problems
    wrong = accounting.wrong_verdicts(manifest, outcomes)
    assert not wrong, f"{sum(wrong.values())} inputs got another verdict: {wrong.most_common(5)}"
    return Counter(v[0] for v in outcomes.values())
