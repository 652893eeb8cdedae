"""Helpers of the analytics job's tests: a seeded shop's events written as ingest writes them, dead
letters and fraud records, the job's command line on a test database, and the batch
recomputation in Python that every table the job writes must equal."""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from confluent_kafka import Producer

from jobs import analytics_config
from tests.fraud_checks import ev
from vigil import serde, sql_catalog, topics
from vigil.registry.catalog import RegistrySchemaCatalog

TAIL_TENANT = "t-tail"
GRAIN_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
CENT = Decimal("0.0001")


# --------------------------------------------------------------------------------------- inputs

def analytics_topics(bootstrap: str) -> dict[str, str]:
    """Fresh clean, dlq, alerts, incidents and features topics with the production settings."""
    prefix = f"analytics-{uuid.uuid4().hex[:8]}"
    roles = (("clean", topics.CLEAN), ("dlq", topics.DLQ), ("alerts", topics.ALERTS),
             ("incidents", topics.INCIDENTS), ("features", topics.FEATURES))
    names = {role: f"{prefix}.{name}" for role, name in roles}
    topics.ensure_topics(bootstrap, [topics.like(names[role], name) for role, name in roles], log=lambda *_: None)
    return {**names, "prefix": prefix}


def analytics_command(names: dict, database: str, *extra: str) -> list[str]:
    """The analytics job on `names`' topics, writing the test database `database` as the writer role."""
    from vigil.serving import postgres

    user, password = postgres.writer_credentials()
    return analytics_config.command(names, "--jdbc-url", postgres.jdbc_url(database), "--jdbc-user", user,
                                    "--jdbc-password", password, "--checkpoint-interval-ms", "1000", *extra)


def analytics_args(names: dict, database: str, *extra: str) -> list[str]:
    """analytics_command's flags alone (for `flink run -py jobs/analytics.py`)."""
    return analytics_command(names, database, *extra)[3:]


def shop_events(seed: int, start_ms: int, count: int, span_ms: int) -> list[dict]:
    """`count` events of a seeded shop between start_ms and start_ms + span_ms: two tenants, one of
    them hot with one hot merchant, a funnel, approved and declined payments in five currencies (one
    the rates do not list), refunds and chargebacks with their outcomes, products and categories."""
    rng = random.Random(seed)
    kinds = (["page_view"] * 40 + ["search"] * 5 + ["add_to_cart"] * 15 + ["checkout"] * 10
             + ["payment_attempt"] * 10 + ["payment_result"] * 12 + ["refund"] * 4 + ["chargeback"] * 2 + ["login"] * 2)
    currencies = ["EUR", "USD", "JPY", "GBP", "DKK"]
    events = []
    for i in range(count):
        tenant = "t-hot" if rng.random() < 0.8 else "t-calm"
        merchant = "m-hot" if tenant == "t-hot" and rng.random() < 0.6 else f"m{rng.randrange(5)}"
        kind = rng.choice(kinds)
        at = start_ms + (i * span_ms) // count + rng.randrange(500)
        e = ev(kind, at, tenant=tenant, user=f"u{rng.randrange(40)}")
        e["merchant_id"] = merchant
        if kind in ("page_view", "add_to_cart", "checkout") and rng.random() < 0.8:
            product = rng.randrange(12)
            e["product_id"], e["category"] = f"p{product}", f"c{product % 3}"
        if kind in ("checkout", "payment_attempt", "payment_result", "refund", "chargeback"):
            currency = rng.choice(currencies)
            places = 0 if currency == "JPY" else 2
            e["amount"] = Decimal(rng.randrange(100, 500_000)).scaleb(-places).quantize(CENT)
            e["currency"] = currency
        e["status"] = {"payment_result": rng.choice(["approved"] * 4 + ["declined"]),
                       "refund": rng.choice(["requested"] * 3 + ["approved"]),
                       "chargeback": rng.choice(["opened", "opened", "won"]),
                       "login": "success"}.get(kind)
        events.append(e)
    return events


def arrival_order(events: list[dict], seed: int, max_disorder_ms: int) -> list[dict]:
    """The events in the order they reach the topic: event time plus a random delay below
    `max_disorder_ms` (out of order, within the watermark bound)."""
    rng = random.Random(seed)
    return sorted(events, key=lambda e: e["event_time"] + rng.randrange(max_disorder_ms))


def write_events(bootstrap: str, registry: str, topic: str, events: list[dict], garbage: int = 0) -> None:
    """Events as the ingest job writes events.clean (avro-confluent), in the order given, then
    `garbage` records that no decoder can read."""
    catalog = RegistrySchemaCatalog(registry)
    schema_id = catalog.register(f"{topic}-value", serde.load_schema("clean-event.avsc"))
    producer = _producer(bootstrap)
    for event in events:
        producer.produce(topic, key=f"{event['tenant_id']}:{event['user_id']}".encode(),
                         value=serde.encode(event, schema_id, catalog), timestamp=event["event_time"])
    for i in range(garbage):
        producer.produce(topic, key=b"t-hot:u-garbage", value=b"not an avro record %d" % i)
    assert producer.flush(30) == 0


def produce_live(bootstrap: str, registry: str, topic: str, events: list[dict], seed: int,
                 max_disorder_ms: int = 2000) -> int:
    """Send `events` as live traffic: each when the wall clock reaches its event time plus a random
    delay below `max_disorder_ms`; returns how many were sent."""
    import time

    rng = random.Random(seed)
    catalog = RegistrySchemaCatalog(registry)
    schema_id = catalog.register(f"{topic}-value", serde.load_schema("clean-event.avsc"))
    producer = _producer(bootstrap)
    for send_at, event in sorted(((e["event_time"] + rng.randrange(max_disorder_ms), e) for e in events),
                                 key=lambda pair: pair[0]):
        wait = send_at / 1000 - time.time()
        if wait > 0:
            producer.poll(0)
            time.sleep(wait)
        producer.produce(topic, key=f"{event['tenant_id']}:{event['user_id']}".encode(),
                         value=serde.encode(event, schema_id, catalog), timestamp=event["event_time"])
    assert producer.flush(30) == 0
    return len(events)


def write_tail(bootstrap: str, registry: str, topic: str, at_ms: int) -> None:
    """One page view at `at_ms` in every partition, so that a running job's watermark (the minimum
    over partitions) passes everything before it."""
    catalog = RegistrySchemaCatalog(registry)
    schema_id = catalog.register(f"{topic}-value", serde.load_schema("clean-event.avsc"))
    producer = _producer(bootstrap)
    for partition in producer.list_topics(topic, timeout=10).topics[topic].partitions:
        tail = ev("page_view", at_ms, tenant=TAIL_TENANT, user=f"u-tail-{partition}")
        producer.produce(topic, partition=partition, key=f"{TAIL_TENANT}:u-tail-{partition}".encode(),
                         value=serde.encode(tail, schema_id, catalog), timestamp=at_ms)
    assert producer.flush(30) == 0


def dead_letter(reason: str, tenant: str | None, at_ms: int) -> dict:
    """A dead letter as the ingest job writes it (sql/ddl/dead_letter_table.sql), rejected at `at_ms`."""
    payload = b"\x00\x00\x00\x00\x01bad"
    return {"reason": reason, "detail": "test", "tenant_id": tenant, "event_id": f"e-{uuid.uuid4().hex[:8]}",
            "source_topic": "events.raw", "source_partition": 0, "source_offset": 7,
            "source_timestamp": _iso(at_ms - 1500), "payload": base64.b64encode(payload).decode(),
            "payload_size": len(payload), "job": "vigil-ingest", "_at": at_ms}


def write_dead_letters(bootstrap: str, topic: str, letters: list[dict], garbage_at_ms: list[int] = ()) -> None:
    producer = _producer(bootstrap)
    for letter in letters:
        value = {k: v for k, v in letter.items() if k != "_at"}
        producer.produce(topic, key=b"k", value=json.dumps(value).encode(), timestamp=letter["_at"])
    for at in garbage_at_ms:
        producer.produce(topic, key=b"k", value=b"{not json", timestamp=at)
    assert producer.flush(30) == 0


def write_avro(bootstrap: str, registry: str, topic: str, columns: str, records: list[tuple[str | None, dict]]) -> None:
    """(key, value) records in avro-confluent with the Avro schema Flink derives from a catalog
    table's `columns` (sql_catalog.column_lists), as the fraud job writes its outputs."""
    catalog = RegistrySchemaCatalog(registry)
    schema_id = catalog.register(f"{topic}-value", flink_avro_schema(columns))
    producer = _producer(bootstrap)
    for key, value in records:
        producer.produce(topic, key=key.encode() if key is not None else None,
                         value=serde.encode(value, schema_id, catalog))
    assert producer.flush(30) == 0


_AVRO = {"STRING": "string", "DOUBLE": "double", "BIGINT": "long", "INT": "int", "BOOLEAN": "boolean",
         "TIMESTAMP(3)": {"type": "long", "logicalType": "timestamp-millis"},
         "ARRAY<STRING>": {"type": "array", "items": ["null", "string"]}}


def flink_avro_schema(columns: str, skip: tuple[str, ...] = ("record_key",)) -> dict:
    """The Avro record Flink's avro-confluent format derives from physical `name TYPE` columns
    (every field nullable), less the key columns in `skip`."""
    fields = []
    for line in columns.splitlines():
        match = re.match(r"\s*(\w+) (STRING|DOUBLE|BIGINT|INT|BOOLEAN|TIMESTAMP\(3\)|ARRAY<STRING>)\s*,?\s*(--.*)?$", line)
        if match and match.group(1) not in skip:
            fields.append({"name": match.group(1), "type": ["null", _AVRO[match.group(2)]], "default": None})
    return {"type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated", "fields": fields}


def fraud_columns() -> dict[str, str]:
    return sql_catalog.column_lists(5)


def appended_times(bootstrap: str, topic: str, values: set[bytes]) -> list[int]:
    """The broker's append times (LogAppendTime topics) of the records whose value is in `values`."""
    from vigil import kafka_io
    return [m.timestamp()[1] for m in kafka_io.read(bootstrap, topic, idle_timeout_s=3) if m.value() in values]


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "partitioner": "murmur2_random"})


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# ------------------------------------------------------------------------ batch recomputation

def floor_ms(at_ms: int, grain: str) -> datetime:
    start = at_ms - at_ms % GRAIN_MS[grain]
    return datetime.fromtimestamp(start / 1000, timezone.utc).replace(tzinfo=None)


def usd(event: dict) -> Decimal:
    return event["amount"] * sql_catalog.usd_per_unit(event["currency"])


def expected_sales(events: list[dict], grain: str) -> dict[tuple, dict]:
    """sales_<grain> recomputed: per (tenant, merchant | '*', window start)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        start = floor_ms(e["event_time"], grain)
        groups[(e["tenant_id"], e["merchant_id"], start)].append(e)
        groups[(e["tenant_id"], "*", start)].append(e)
    rows = {}
    for key, group in groups.items():
        def count(kind, status=None, default=None):
            return sum(1 for e in group if e["event_type"] == kind
                       and (status is None or (e["status"] or default) == status))
        approved, declined = count("payment_result", "approved"), count("payment_result", "declined")
        gmv = sum((usd(e) for e in group if e["event_type"] == "payment_result" and e["status"] == "approved"),
                  Decimal(0))
        refunds = [e for e in group if e["event_type"] == "refund" and (e["status"] or "requested") == "requested"]
        rows[key] = {
            "events": len(group), "page_views": count("page_view"), "add_to_carts": count("add_to_cart"),
            "checkouts": count("checkout"), "payment_attempts": count("payment_attempt"),
            "payments_approved": approved, "payments_declined": declined,
            "approval_rate": approved / (approved + declined) if approved + declined else None,
            "orders": approved, "gmv_usd": gmv.quantize(CENT, ROUND_HALF_UP),
            "avg_basket_usd": gmv / approved if approved else None,
            "refunds": len(refunds), "refund_usd": sum((usd(e) for e in refunds), Decimal(0)).quantize(CENT, ROUND_HALF_UP),
            "chargebacks": count("chargeback", "opened", "opened"),
            "distinct_users": len({e["user_id"] for e in group}),
            "window_end": key[2] + timedelta(milliseconds=GRAIN_MS[grain])}
    return rows


def expected_products(events: list[dict], grain: str) -> dict[tuple, dict]:
    rows: dict[tuple, dict] = {}
    for e in events:
        if e["product_id"] is None or e["event_type"] not in ("page_view", "add_to_cart", "checkout"):
            continue
        key = (e["tenant_id"], e["product_id"], floor_ms(e["event_time"], grain))
        row = rows.setdefault(key, {"category": None, "views": 0, "carts": 0, "checkouts": 0})
        row["category"] = max(filter(None, [row["category"], e["category"]]), default=None)
        row[{"page_view": "views", "add_to_cart": "carts", "checkout": "checkouts"}[e["event_type"]]] += 1
    return rows


def expected_quality(rejections: list[tuple[str, str, int]], grain: str) -> dict[tuple, dict]:
    """quality_<grain> from (tenant, reason, rejected at ms) triples."""
    rows: dict[tuple, dict] = defaultdict(lambda: {"rejections": 0})
    for tenant, reason, at in rejections:
        rows[(tenant, reason, floor_ms(at, grain))]["rejections"] += 1
    return dict(rows)


# ---------------------------------------------------------------------------------- comparison

KEYS = {"sales": ("tenant_id", "merchant_id", "window_start"), "products": ("tenant_id", "product_id", "window_start"),
        "quality": ("tenant_id", "reason", "window_start")}


def read_table(database: str, table: str, key: tuple[str, ...], where: str = "true") -> dict[tuple, dict]:
    """Every row of analytics.<table> in the test database, by key (as the admin role: no RLS)."""
    import psycopg
    from psycopg.rows import dict_row

    from vigil.serving import postgres

    with psycopg.connect(postgres.dsn("vigil_admin", database), row_factory=dict_row) as connection:
        rows = connection.execute(f"SELECT * FROM analytics.{table} WHERE {where}").fetchall()
    return {tuple(row[k] for k in key): row for row in rows}


def differences(expected: dict[tuple, dict], actual: dict[tuple, dict], limit: int = 10,
                ignore: tuple[str, ...] = ()) -> list[str]:
    """What differs between recomputed and written rows: missing and extra keys, and each value
    (exact for counts and sums, within float or decimal rounding for the ratios), but the columns
    in `ignore`."""
    out = [f"missing {key}" for key in sorted(set(expected) - set(actual), key=str)]
    out += [f"extra {key}: {actual[key]}" for key in sorted(set(actual) - set(expected), key=str)]
    for key in sorted(set(expected) & set(actual), key=str):
        for column, want in expected[key].items():
            if column in ignore:
                continue
            got = actual[key][column]
            if not _same(column, want, got):
                out.append(f"{key} {column}: expected {want!r}, written {got!r}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def _same(column: str, want, got) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if column == "approval_rate":
        return abs(want - got) < 1e-12
    if column == "avg_basket_usd":      # the quotient of two exact aggregates, rounded once by Flink
        return abs(Decimal(want) - Decimal(got)) <= CENT
    return want == got
