"""Bad input the generator injects, each kind with the ingest verdict it must get.

Every function takes a well-formed event (a dict, already carrying event_id and event_time) and
the EventWriter that encodes (vigil.generator.wire), and returns (key, value, timestamp_ms, expected) where `expected` is the DLQ reason the ingest job
must give it ("clean" when it must be accepted). Kinds are drawn uniformly.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Callable

from vigil import serde
from vigil.generator.wire import EventWriter

Bad = tuple[bytes | None, bytes | None, int, str]
DAY_MS = 24 * 3600 * 1000


def key_of(event: dict) -> bytes:
    return f"{event['tenant_id']}:{event['user_id']}".encode()


def _valid(event: dict, write: EventWriter) -> tuple[bytes, bytes]:
    return key_of(event), write.event(event)


def random_bytes(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    value = bytes([rng.randrange(1, 256)]) + rng.randbytes(rng.randrange(5, 200))
    return key_of(event), value, event["event_time"], "bad_magic_byte"


def truncated(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    key, value = _valid(event, write)
    if rng.random() < 0.2:  # cut inside the 5-byte wire-format header
        return key, value[: rng.randrange(1, 5)], event["event_time"], "bad_header"
    return key, value[: rng.randrange(6, len(value) - 1)], event["event_time"], "avro_decode_error"


def json_text(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    value = ('{"event_id": "%s", "tenant_id": "%s", "amount": "12,50"}' % (event["event_id"], event["tenant_id"])).encode()
    return key_of(event), value, event["event_time"], "bad_magic_byte"


def unknown_schema(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    key, value = _valid(event, write)
    return key, b"\x00" + write.unknown_id.to_bytes(4, "big") + value[5:], event["event_time"], "unknown_schema_id"


def empty_value(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    return key_of(event), (None if rng.random() < 0.5 else b""), event["event_time"], "empty_payload"


def missing_field(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    field = rng.choice(["event_id", "tenant_id", "user_id", "event_type", "merchant_id"])
    key = key_of(event)
    event = {**event, field: None if rng.random() < 0.7 else ""}
    return key, write.event(event), event["event_time"], "missing_field"


def wrong_type(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    legacy = {"event_id": event["event_id"], "event_time": "2026-01-01T10:00:00Z",
              "tenant_id": event["tenant_id"], "merchant_id": event["merchant_id"],
              "user_id": event["user_id"], "event_type": "checkout", "amount": 12.5, "currency": "EUR"}
    return key_of(event), write.foreign(legacy), event["event_time"], "schema_mismatch"


def out_of_range(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    """One field out of its domain: (changes, expected reason, event-time shift in ms)."""
    money = {"event_type": "checkout", "status": None, "currency": "EUR", "amount": Decimal("10.00")}
    case = rng.choice([
        ({**money, "amount": Decimal("-25.00")}, "amount_out_of_range", 0),
        ({**money, "amount": Decimal("5000000000.00")}, "amount_out_of_range", 0),
        ({**money, "currency": "XYZ"}, "invalid_currency", 0),
        ({**money, "currency": "JPY", "amount": Decimal("10.50")}, "amount_precision", 0),
        ({"latitude": 123.0, "longitude": 10.0}, "invalid_geo", 0),
        ({"latitude": float("nan"), "longitude": 10.0}, "invalid_geo", 0),
        ({"country": "ZZ"}, "invalid_country", 0),
        ({"ip": "999.12.0.1"}, "invalid_ip", 0),
        ({"event_type": "teleport", "status": None}, "unknown_event_type", 0),
        ({**money, "event_type": "payment_result", "status": "maybe"}, "invalid_status", 0),
        # A device clock far ahead. The record timestamp stays at the send time (see
        # record_timestamp): only the event_time field is in the future.
        ({}, "event_time_in_future", rng.randrange(10, 50) * 60_000),
        ({}, "event_time_too_old", -30 * DAY_MS),
    ])
    changes, reason, shift = case
    sent_at = event["event_time"]
    event = {**event, **changes, "event_time": event["event_time"] + shift}
    return key_of(event), write.event(event), serde.record_timestamp(event["event_time"], sent_at), reason


def hostile_identifier(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    value = rng.choice(["'; DROP TABLE users;--", "u\x00\x1b[31m", "x" * 5000, "../../etc/passwd",
                        "<script>alert(1)</script>", "user id with spaces", "\u202eevil"])
    event = {**event, "user_id": value}
    return key_of(event), write.event(event), event["event_time"], "invalid_identifier"


def oversized(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    event = {**event, "category": "x" * rng.randrange(70_000, 1_000_000)}
    return key_of(event), write.event(event), event["event_time"], "oversized_payload"


def key_mismatch(rng: random.Random, event: dict, write: EventWriter) -> Bad:
    return b"t999:u0000000", write.event(event), event["event_time"], "key_mismatch"


BAD_KINDS: dict[str, Callable[[random.Random, dict, EventWriter], Bad]] = {
    "random_bytes": random_bytes, "truncated": truncated, "json_text": json_text,
    "unknown_schema": unknown_schema, "empty_value": empty_value, "missing_field": missing_field,
    "wrong_type": wrong_type, "out_of_range": out_of_range, "hostile_identifier": hostile_identifier,
    "oversized": oversized, "key_mismatch": key_mismatch,
}
# Kinds that are valid events in the wrong place or time, handled by the stream (it needs history):
STREAM_KINDS = ("duplicate", "late", "out_of_order")
