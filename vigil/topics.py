"""Kafka topics of the platform: names, partitions, settings, and idempotent creation.

Partition counts are sized for the local machine; docs/adr/0001 says how they scale (the key
tenant_id:user_id spreads skewed tenants over partitions while keeping each user's order).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

RAW = "events.raw"
CLEAN = "events.clean"
DLQ = "events.dlq"
LABELS = "labels.scenarios"
RULES = "fraud.rules"
ALERTS = "fraud.alerts"
INCIDENTS = "fraud.incidents"
FEATURES = "features.online"
SCORES = "fraud.scores"
CHARGEBACKS = "labels.chargebacks"
DECISIONS = "fraud.decisions"
FRAUD_DLQ = "fraud.dlq"

_PARTITIONS = int(os.environ.get("VIGIL_PARTITIONS", "4"))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = _PARTITIONS
    config: dict = field(default_factory=dict)


WEEK_MS = str(7 * 24 * 3600 * 1000)
THIRTY_DAYS_MS = str(30 * 24 * 3600 * 1000)
TOPICS = (
    TopicSpec(RAW, config={"retention.ms": WEEK_MS, "max.message.bytes": "2097152"}),
    # LogAppendTime: each record carries the time the broker appended it, where the fraud job's
    # detection latency starts (and retention follows arrival, not possibly old event times).
    TopicSpec(CLEAN, config={"retention.ms": WEEK_MS, "message.timestamp.type": "LogAppendTime"}),
    # The DLQ keeps original bytes (base64) of payloads up to 2 MiB, so its records are larger.
    TopicSpec(DLQ, config={"retention.ms": THIRTY_DAYS_MS, "max.message.bytes": "8388608"}),
    TopicSpec(LABELS, partitions=1, config={"retention.ms": "-1"}),
    # Fraud rules per tenant (key tenant_id, "*" = defaults): compacted, kept forever; one
    # partition, since the fraud job reads every rule in every subtask (versioned table).
    TopicSpec(RULES, partitions=1, config={"cleanup.policy": "compact", "retention.ms": "-1"}),
    TopicSpec(ALERTS, config={"retention.ms": THIRTY_DAYS_MS}),
    # Alerts grouped into incidents (udfs/incidents.py), the latest version per incident id:
    # compacted, and versions older than 30 days deleted too (what analysts count).
    TopicSpec(INCIDENTS, config={"cleanup.policy": "compact,delete", "retention.ms": THIRTY_DAYS_MS}),
    # Online features per entity (key tenant:entity_type:entity_id), upserted by the fraud job: compacted, kept forever.
    TopicSpec(FEATURES, config={"cleanup.policy": "compact", "retention.ms": "-1"}),
    # One score per payment attempt (models, risk, reasons), exactly-once, from the fraud job.
    TopicSpec(SCORES, config={"retention.ms": WEEK_MS}),
    # The low-latency decisions (at-least-once, within milliseconds; docs/adr/0005).
    TopicSpec(DECISIONS, config={"retention.ms": WEEK_MS}),
    # The fraud job's dead letters: refused rules, labels and events, internal errors (like events.dlq).
    TopicSpec(FRAUD_DLQ, config={"retention.ms": THIRTY_DAYS_MS, "max.message.bytes": "8388608"}),
    # Delayed ground truth per payment attempt (key tenant_id:event_id), record time = label time,
    # which the generator writes ahead of the wall clock: future timestamps are accepted (Kafka 4
    # refuses those more than 1 h ahead by default, log.message.timestamp.after.max.ms).
    TopicSpec(CHARGEBACKS, config={"retention.ms": THIRTY_DAYS_MS,
                                   "message.timestamp.after.max.ms": str(2**63 - 1)}),
)


def create_ingest_topics(bootstrap: str, prefix: str) -> dict[str, str]:
    """Fresh `<prefix>.raw/.clean/.dlq` with the production topics' settings (tests, benchmarks),
    plus the labels topic the generator writes; returns the names by role and the prefix."""
    names = {"raw": f"{prefix}.raw", "clean": f"{prefix}.clean", "dlq": f"{prefix}.dlq", "prefix": prefix}
    specs = [like(names[role], name) for role, name in (("raw", RAW), ("clean", CLEAN), ("dlq", DLQ))]
    ensure_topics(bootstrap, specs + [like(LABELS, LABELS)], log=lambda *_: None)
    return names


def create_fraud_topics(bootstrap: str, prefix: str) -> dict[str, str]:
    """Fresh `<prefix>.events.clean/.fraud.rules/.fraud.alerts/.fraud.incidents/.features.online/
    .fraud.scores/.labels.chargebacks/.fraud.decisions/.fraud.dlq` with the production topics' settings (tests, benchmarks of the fraud job);
    returns the names by role and the prefix."""
    roles = (("clean", CLEAN), ("rules", RULES), ("alerts", ALERTS), ("incidents", INCIDENTS), ("features", FEATURES),
             ("scores", SCORES), ("chargebacks", CHARGEBACKS), ("decisions", DECISIONS), ("dlq", FRAUD_DLQ))
    names = {role: f"{prefix}.{name}" for role, name in roles}
    ensure_topics(bootstrap, [like(names[role], name) for role, name in roles], log=lambda *_: None)
    return {**names, "prefix": prefix}


def like(topic: str, production_name: str) -> TopicSpec:
    """A spec for `topic` with the partitions and settings of a production topic."""
    spec = next(s for s in TOPICS if s.name == production_name)
    return TopicSpec(topic, partitions=spec.partitions, config=spec.config)


def ensure_topics(bootstrap: str, specs=TOPICS, log=print) -> None:
    """Create missing topics; existing ones are left as they are."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
           for s in specs if s.name not in existing]
    if not new:
        return
    for name, future in admin.create_topics(new).items():
        try:
            future.result()
            log(f"topic {name}: created")
        except Exception as exc:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    _wait_for_leaders(admin, [t.topic for t in new])


def _wait_for_leaders(admin, names: list[str], timeout_s: float = 30.0) -> None:
    """A new topic answers metadata before its partitions have leaders; wait for them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10).topics
        if all(n in metadata and metadata[n].partitions and
               all(p.leader >= 0 for p in metadata[n].partitions.values()) for n in names):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics {names} have no partition leaders after {timeout_s:.0f}s")
