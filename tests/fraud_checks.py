"""Helpers of the fraud job's tests: write scenario events to a clean topic in the format the
ingest job writes (avro-confluent), publish rules, run the job bounded (alerts are read back
with vigil.registry.catalog.read_values)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Producer

from jobs import fraud_config
from vigil import fraud_rules
from vigil import serde, topics
from vigil.paths import PROJECT_ROOT
from vigil.registry.catalog import RegistrySchemaCatalog
from vigil.rules_cli import publish


def fraud_topics(bootstrap: str) -> dict[str, str]:
    return topics.create_fraud_topics(bootstrap, f"fraud-{uuid.uuid4().hex[:8]}")


def ev(event_type: str, at_ms: int, *, tenant: str = "t1", user: str = "u1", card: str | None = None,
       device: str | None = None, ip: str = "10.0.0.1", amount: str | None = None, currency: str = "USD",
       country: str = "FR", lat: float = 48.857, lon: float = 2.352, status: str | None = None) -> dict:
    """A clean event as ingest writes it (source partition/offset are not used by the fraud job);
    each user has their own device unless one is given."""
    return {"event_id": f"e-{uuid.uuid4().hex[:12]}", "event_time": at_ms, "tenant_id": tenant,
            "merchant_id": "m1", "user_id": user, "session_id": None, "device_id": device or f"d-{user}", "ip": ip,
            "card_fingerprint": card, "event_type": event_type, "status": status,
            "amount": Decimal(amount).quantize(Decimal("0.0001")) if amount is not None else None,
            "currency": currency if amount is not None else None, "country": country,
            "latitude": lat, "longitude": lon, "product_id": None, "category": None,
            "schema_version": 1, "payment_method": None, "loyalty_tier": None,
            "source_partition": 0, "source_offset": 0}


def write_clean(bootstrap: str, registry: str, topic: str, events: list[dict], tail_at_ms: int | None = None) -> None:
    """Write events in event-time order; with `tail_at_ms`, then one page view at that time into
    every partition, so that a running job's watermark (the minimum over partitions) passes them."""
    catalog = RegistrySchemaCatalog(registry)
    schema_id = catalog.register(f"{topic}-value", serde.load_schema("clean-event.avsc"))
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    for event in sorted(events, key=lambda e: e["event_time"]):
        producer.produce(topic, key=f"{event['tenant_id']}:{event['user_id']}".encode(),
                         value=serde.encode(event, schema_id, catalog), timestamp=event["event_time"])
    if tail_at_ms is not None:
        partitions = producer.list_topics(topic, timeout=10).topics[topic].partitions
        for partition in partitions:
            tail = ev("page_view", tail_at_ms, tenant="t-tail", user=f"u-tail-{partition}")
            producer.produce(topic, partition=partition, key=f"t-tail:u-tail-{partition}".encode(),
                             value=serde.encode(tail, schema_id, catalog), timestamp=tail_at_ms)
    assert producer.flush(30) == 0


def set_rules(bootstrap: str, topic: str, tenant: str, overrides: dict, effective_from_ms: int) -> None:
    publish(bootstrap, topic, fraud_rules.rule_message(tenant, overrides, effective_from_ms))


def fraud_job_command(names: dict, *extra: str) -> list[str]:
    """The fraud job on the topics of `fraud_topics`, with its own model snapshots."""
    snapshots = Path(tempfile.gettempdir()) / "vigil-test-models" / names["prefix"]
    return fraud_config.command(names, "--model-snapshot-dir", str(snapshots),
                                "--checkpoint-interval-ms", "1000", *extra)


def run_bounded_fraud_job(names: dict, *extra: str) -> None:
    result = subprocess.run(fraud_job_command(names, "--bounded", *extra), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def write_labels(bootstrap: str, topic: str, labels: list[dict]) -> None:
    """Chargeback labels as payment systems (and `vigil generate`) write them, in label-time order."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    for label in sorted(labels, key=lambda item: item["label_time"]):
        producer.produce(topic, key=f"{label['tenant_id']}:{label['event_id']}".encode(),
                         value=json.dumps(label).encode(), timestamp=label["label_time"])
    assert producer.flush(30) == 0
