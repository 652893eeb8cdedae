"""Shared set-up of the fraud benchmarks: generated traffic (fixed seed, labelled fraud scenarios,
chargeback labels) through the real ingest job into fresh topics, ready for the fraud job."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vigil.kafka_io import format_offsets  # noqa: E402
from vigil import fraud_rules  # noqa: E402
from vigil import kafka_broker, kafka_io, topics  # noqa: E402
from vigil.generator.producer import produce  # noqa: E402
from vigil.generator.stream import EventStream, StreamSettings  # noqa: E402
from vigil.generator.wire import EventWriter  # noqa: E402
from vigil.paths import PROJECT_ROOT  # noqa: E402
from vigil.registry import service as registry_service  # noqa: E402
from vigil.rules_cli import publish  # noqa: E402


@dataclass
class Prepared:
    bootstrap: str
    registry: str
    names: dict            # fraud topics by role (topics.create_fraud_topics), clean filled
    labels_file: Path      # ground truth of the fraud scenarios (JSON lines)
    start_ms: int
    events: int
    ingest_s: float


def run(cmd: list[str], what: str, timeout_s: int = 3600) -> float:
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.monotonic() - started


def start_services() -> tuple[str, str]:
    kafka_broker.start(log=lambda *_: None)
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    registry_service.start(bootstrap, log=lambda *_: None)
    return bootstrap, registry_service.registry_url()


def prepare(events: int, seed: int, rate: float, fraud_fraction: float, prefix: str, mix: str = "standard") -> Prepared:
    """`events` generated events, `rate` per second of event time ending about now, ingested."""
    bootstrap, url = start_services()
    prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
    ingest_names = topics.create_ingest_topics(bootstrap, prefix)
    names = {**topics.create_fraud_topics(bootstrap, prefix), "clean": ingest_names["clean"]}
    start_ms = int(time.time() * 1000) - int(events / rate * 1000)
    labels_file = Path(f"/tmp/{prefix}-labels.jsonl")
    stream = EventStream(StreamSettings(seed=seed, start_ms=start_ms, rate=rate, fraud_fraction=fraud_fraction, mix=mix),
                         EventWriter.registered(url, ingest_names["raw"], with_v2=False))
    stats = produce(stream.records(), bootstrap, rate, events=events, pace=False, topic=ingest_names["raw"],
                    labels_file=labels_file, chargebacks_topic=names["chargebacks"], progress_every_s=1e9)
    assert stats.failed == 0, stats.first_error
    end = kafka_io.end_offsets(bootstrap, ingest_names["raw"])
    ingest_s = run([sys.executable, "-m", "jobs.ingest", "--raw-topic", ingest_names["raw"],
                    "--clean-topic", ingest_names["clean"], "--dlq-topic", ingest_names["dlq"],
                    "--transactional-id-prefix", prefix, "--group-id", prefix,
                    "--start-offsets", format_offsets({p: 0 for p in end}), "--stop-offsets", format_offsets(end)],
                   "ingest")
    publish(bootstrap, names["rules"], fraud_rules.default_message(start_ms - 24 * 3600_000))
    return Prepared(bootstrap, url, names, labels_file, start_ms, events, ingest_s)


def options_known_to(tree: Path, flags: list[str]) -> list[str]:
    """`flags` less the `--option value` pairs the fraud job of `tree` (an older revision, for
    --baseline-rev) does not define, e.g. the topic of an output it did not have yet."""
    defined = (tree / "jobs" / "fraud_config.py").read_text()
    out, i = [], 0
    while i < len(flags):
        flag = flags[i]
        takes_value = flag.startswith("--") and i + 1 < len(flags) and not flags[i + 1].startswith("--")
        if flag.startswith("--") and f'"{flag}"' not in defined and tree != PROJECT_ROOT:
            i += 2 if takes_value else 1
            continue
        out.append(flag)
        i += 1
    return out
