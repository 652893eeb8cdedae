"""Hostile raw records for events.raw, each with the verdict the ingest job must give it.

For an integration test through the real ingest job, and for unit tests offline. No pytest, no JVM.

    ids = register_other_schemas(RegistryClient(url).register)    # one subject per kind
    v1_id, v2_id = (client.register("<raw topic>-value", serde.load_schema(f)) for f in ...)
    for r in hostile_records(ids, v1_id, v2_id, now_ms=int(time.time() * 1000)):
        produce(topic, key=r.key, value=r.value, timestamp=r.timestamp_ms)
    # then: every r lands in events.dlq with reason r.expected, or in events.clean if it is None

`OTHER_SCHEMAS` holds a schema of every kind that is not the event (each Avro primitive, an enum,
an array, a map, a fixed, a union, a logical type, a record of another name, records named like the
event but unreadable): a record whose schema id names one is a `schema_mismatch` (issue 10).
The list is deterministic: the same ids, now_ms and seed give the same bytes. Each accepted event
has its own event_id, so that none is a `duplicate`. Build it just before producing: event times
are relative to now_ms (a device clock 10+ minutes ahead is `event_time_in_future`).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from typing import Any, Callable

import fastavro

from tests.scenarios import event, payment
from vigil import serde
from vigil.generator import bad_input
from vigil.generator.bad_input import key_of
from vigil.generator.wire import UNKNOWN_SCHEMA_ID, EventWriter


@dataclass(frozen=True)
class HostileRecord:
    description: str
    key: bytes | None
    value: bytes | None
    expected: str | None  # the DLQ reason; None when the event must reach events.clean
    # The Kafka record timestamp: now_ms for every record (hostile event times must not move the
    # watermark, and Kafka refuses negative timestamps).
    timestamp_ms: int


_EVENT_NAME = {"name": "Event", "namespace": "dev.vigil.events"}

# kind -> (schema, one value of it, to write a realistic body)
_OTHERS: dict[str, tuple[Any, Any]] = {
    "null": ("null", None), "boolean": ("boolean", True), "int": ("int", -7), "long": ("long", 2**62),
    "float": ("float", 1.5), "double": ("double", float("nan")), "bytes": ("bytes", b"\x00\x01\xff"),
    "string": ("string", "t1:u1"),
    "enum": ({"type": "enum", "name": "Colour", "namespace": "com.example", "symbols": ["RED", "GREEN"]}, "GREEN"),
    "array": ({"type": "array", "items": "string"}, ["e1", "t1"]),
    "map": ({"type": "map", "values": "long"}, {"event_id": 1}),
    "fixed": ({"type": "fixed", "name": "Md5", "namespace": "com.example", "size": 16}, bytes(range(16))),
    "union": (["null", "string", "long"], "e1"),
    "timestamp": ({"type": "long", "logicalType": "timestamp-millis"}, 1_795_000_000_000),
    "record_other_name": ({"type": "record", "name": "Order", "namespace": "com.example.shop", "fields": [
        {"name": "event_id", "type": "string"}, {"name": "total", "type": "double"}]},
        {"event_id": "e1", "total": 12.5}),
    # Named like the event, but its fields cannot be read as the event's (ISO string event_time,
    # float amount): the generator's "legacy" producer.
    "event_other_types": (serde.load_schema("foreign/event-legacy-typed.avsc"),
                          {"event_id": "e1", "event_time": "2026-01-01T00:00:00Z", "amount": 12.5}),
    # Named like the event, readable field by field, but unsafe to decode at all: fastavro recurses
    # once per level in C (a few KB nested deep kill the process) ...
    "event_recursive": ({"type": "record", **_EVENT_NAME, "fields": [
        {"name": "event_id", "type": ["null", "string"], "default": None},
        {"name": "next", "type": ["null", "dev.vigil.events.Event"], "default": None}]},
        {"event_id": "e1", "next": {"event_id": "e2", "next": None}}),
    # ... and reads as many items of an array of nulls as six bytes claim (billions).
    "event_zero_size_array": ({"type": "record", **_EVENT_NAME, "fields": [
        {"name": "event_id", "type": ["null", "string"], "default": None},
        {"name": "pings", "type": {"type": "array", "items": "null"}, "default": []}]},
        {"event_id": "e1", "pings": [None] * 3}),
}
OTHER_SCHEMAS: dict[str, Any] = {kind: schema for kind, (schema, _) in _OTHERS.items()}


def register_other_schemas(register: Callable[[str, str], int], prefix: str = "vigil.hostile") -> dict[str, int]:
    """Register each of OTHER_SCHEMAS under its own subject; {kind: schema id}.
    `register(subject, schema_text)`: e.g. vigil.registry.client.RegistryClient(url).register."""
    return {kind: register(f"{prefix}.{kind}-value", json.dumps(schema)) for kind, schema in OTHER_SCHEMAS.items()}


class SchemaTable:
    """A SchemaCatalog (vigil.serde) over {id: schema}, read as event v2 like the ingest job."""

    def __init__(self, schemas: dict[int, Any], reader_id: int):
        self._parsed = {schema_id: fastavro.parse_schema(schema) for schema_id, schema in schemas.items()}
        self._reader_id = reader_id

    def writer_schema(self, schema_id: int) -> Any:
        return self._parsed[schema_id]  # KeyError: unknown id

    def reader_schema(self) -> Any:
        return self._parsed[self._reader_id]

    def id_of_reader(self) -> int:
        return self._reader_id


def catalog_for(schema_ids: dict[str, int], v1_id: int, v2_id: int) -> SchemaTable:
    """The schemas as the registry holds them after register_other_schemas and the event's two."""
    schemas = {schema_ids[kind]: schema for kind, schema in OTHER_SCHEMAS.items() if kind in schema_ids}
    schemas.update({v1_id: serde.load_schema("event-v1.avsc"), v2_id: serde.load_schema("event-v2.avsc")})
    return SchemaTable(schemas, reader_id=v2_id)


def other_kind_value(kind: str, schema_id: int) -> bytes:
    """A wire-format record of another kind: header with `schema_id`, then a value of that kind."""
    schema, value = _OTHERS[kind]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), value)
    return serde.HEADER.pack(serde.MAGIC_BYTE, schema_id) + body.getvalue()


def varint(n: int) -> bytes:
    """Avro's zig-zag varint of `n`, of any size (Avro's own stop at 64 bits).

    >>> varint(1), varint(-1), varint(64)
    (b'\\x02', b'\\x01', b'\\x80\\x01')
    """
    zigzag = (n << 1) ^ (n >> max(n.bit_length() + 1, 64))
    out = bytearray()
    while zigzag > 0x7F:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    return bytes(out + bytes([zigzag]))


def hostile_records(schema_ids: dict[str, int], v1_id: int, v2_id: int, now_ms: int,
                    seed: int = 10) -> list[HostileRecord]:
    """Every hostile record, with its expected reason. `schema_ids`: {kind: id} for the kinds of
    OTHER_SCHEMAS registered (any subset); v1_id, v2_id: the event schema's ids on events.raw."""
    rng = random.Random(seed)
    writer = EventWriter(catalog_for(schema_ids, v1_id, v2_id), v1_id, v2_id,
                         foreign_id=schema_ids.get("event_other_types", UNKNOWN_SCHEMA_ID))
    out: list[HostileRecord] = []
    serial = iter(range(1_000_000))

    def base(record: dict | None = None, **fields) -> dict:
        """A valid event (its own event_id, happening now), with `fields` changed."""
        record = dict(record or event(at_ms=now_ms))
        record.update({"event_id": f"hostile-{seed}-{next(serial):04d}", **fields})
        return record

    def add(description: str, key: bytes | None, value: bytes | None, expected: str | None) -> None:
        out.append(HostileRecord(description, key, value, expected, now_ms))

    def add_event(description: str, record: dict, expected: str | None) -> None:
        add(description, key_of(record), writer.event(record), expected)

    def add_bad(description: str, kind: Callable) -> None:
        key, value, _, expected = kind(rng, base(), writer)
        add(description, key, value, None if expected == "clean" else expected)

    # Valid events, both schema versions: accepted.
    add_event("a page view (v1)", base(), None)
    add_event("a checkout (v2, payment_method)", base(payment(amount="19.99", at_ms=now_ms), event_type="checkout",
                                                      schema_version=2, payment_method="card"), None)
    add_event("a payment with a place and an IPv6 address",
              base(payment(amount="1500", currency="JPY", at_ms=now_ms), country="JP", latitude=35.68,
                   longitude=139.69, ip="2001:db8::1"), None)
    add_event("a 60 KB category (under the 64 KB limit)", base(category="c" * 60_000), None)

    # Records whose schema id names a schema of another kind (issue 10).
    for kind, schema_id in schema_ids.items():
        add(f"a record written with the {kind} schema (id {schema_id})", b"t1:u1", other_kind_value(kind, schema_id),
            "schema_mismatch")

    # Bytes that are not a record.
    for _ in range(3):
        add_bad("random bytes", bad_input.random_bytes)
    add_bad("JSON text", bad_input.json_text)
    header = serde.HEADER.pack(serde.MAGIC_BYTE, v2_id)
    for size in (1, 40, 2000):  # an odd first byte is a negative union branch: never a record
        add(f"the v2 header then {size} random bytes", b"t1:u1",
            header + bytes([rng.randrange(1, 128, 2)]) + rng.randbytes(size - 1), "avro_decode_error")
    for _ in range(4):
        add_bad("a truncated record", bad_input.truncated)
    for padding in (b"\x00", bytes(1024), b"\x02\x04hi"):
        record = base()
        add(f"a record with {len(padding)} bytes after it", key_of(record), writer.event(record) + padding,
            "avro_decode_error")
    record = base()  # v1 ends with schema_version: 1, then 2^68 (no Avro int, and no BIGINT either)
    add("schema_version 2^68", key_of(record), writer.event(record)[:-1] + varint(2**68), "avro_decode_error")
    add("a tombstone (no value)", b"t1:u1", None, "empty_payload")
    add("an empty value", b"t1:u1", b"", "empty_payload")
    add("only the magic byte", b"t1:u1", b"\x00", "bad_header")

    # Schema ids nobody registered.
    add_bad("an unknown schema id", bad_input.unknown_schema)
    for schema_id in (0, 2**32 - 1):
        add(f"schema id {schema_id}", b"t1:u1", serde.HEADER.pack(0, schema_id) + writer.event(base())[5:],
            "unknown_schema_id")

    # Values out of their domain.
    for lat, lon in ((float("nan"), 2.35), (48.85, float("inf")), (float("-inf"), float("nan"))):
        add_event(f"coordinates ({lat}, {lon})", base(latitude=lat, longitude=lon), "invalid_geo")
    for amount in ("-25.00", "0", "5000000000.00", "1" + "0" * 40):
        add_event(f"amount {amount[:12]}", base(payment(amount=amount, at_ms=now_ms)), "amount_out_of_range")
    for at_ms, expected in ((0, "event_time_too_old"), (-62_135_596_800_000, "event_time_too_old"),
                            (253_402_300_799_999, "event_time_in_future")):
        add_event(f"event_time {at_ms}", base(event_time=at_ms), expected)
    for _ in range(3):
        add_bad("a field out of its domain", bad_input.out_of_range)
    add_bad("a required field missing", bad_input.missing_field)

    # Identifiers that must never reach a key, a SQL string or a log line as they are.
    for field, value in (("user_id", "'; DROP TABLE users;--"), ("tenant_id", "t1\U0001F4B3\U0001F525"),
                         ("merchant_id", "<script>alert(1)</script>"), ("event_id", "\u202eevil"),
                         ("device_id", "d\x00\x1b[31m"), ("user_id", "t1:u1"), ("card_fingerprint", "\U0001F600"),
                         ("user_id", "u" * 60_000)):
        add_event(f"{field} {value[:30]!r}", base(**{field: value}), "invalid_identifier")
    add_bad("a hostile user_id", bad_input.hostile_identifier)

    add_bad("an oversized payload", bad_input.oversized)

    # Keys that are not tenant_id:user_id.
    add_bad("another tenant's key", bad_input.key_mismatch)
    for key in (None, b"", b"u1:t1", b"t1:u1 ", b"t1", "t1:u1".encode("utf-16")):
        add(f"key {key!r}", key, writer.event(base()), "key_mismatch")
    return out
