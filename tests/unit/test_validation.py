"""Validation rules, one scenario each: accepted events, and every way input goes bad."""

from __future__ import annotations

import pytest

from tests.scenarios import NOW_MS, event, payment, wire
from udfs.validation import REASONS, ValidationRules, validate
from vigil import serde

RULES = ValidationRules()


def verdict_of(record: dict, key: bytes | None = None, now_ms: int = NOW_MS):
    k, v = wire(record)
    return validate(v, key if key is not None else k, now_ms, RULES)


def reason_of(record: dict, **kw) -> str | None:
    return verdict_of(record, **kw).reason


def test_accepts_ordinary_events_and_returns_them_decoded():
    verdict = verdict_of(payment(amount="19.99", country="FR", latitude=48.8, longitude=2.3, ip="2001:db8::1"))
    assert verdict.accepted
    assert verdict.event["amount"] == serde.decode(wire(payment(amount="19.99"))[1])["amount"]
    assert reason_of(event("login", status="success")) is None
    assert reason_of(payment(amount="1500", currency="JPY")) is None  # zero-decimal currency


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty_payload"),
    (None, "empty_payload"),
    (b"\x00\x00", "bad_header"),
    (b"{\"event_id\": \"e1\"}", "bad_magic_byte"),
    (b"\x00\x00\x00\x10\x92" + b"\x02" * 20, "unknown_schema_id"),
    (b"\x00\x00\x00\x00\x01" + b"\xff" * 40, "avro_decode_error"),
])
def test_undecodable_bytes_get_a_reason(payload, reason):
    assert validate(payload, b"t1:u1", NOW_MS, RULES).reason == reason


def test_truncated_and_padded_avro_are_decode_errors():
    key, value = wire(event())
    assert validate(value[:-3], key, NOW_MS, RULES).reason == "avro_decode_error"
    assert validate(value + b"\x00", key, NOW_MS, RULES).reason == "avro_decode_error"


def test_oversized_payload_is_rejected_before_decoding():
    verdict = verdict_of(event(category="x" * 70_000))
    assert verdict.reason == "oversized_payload" and "limit 65536" in verdict.detail


def test_wrongly_typed_fields_name_the_field():
    legacy = {"event_id": "e1", "event_time": "2026-01-01T00:00:00Z", "tenant_id": "t1",
              "merchant_id": "m1", "user_id": "u1", "event_type": "checkout", "amount": 1.5, "currency": "EUR"}
    verdict = validate(serde.encode(legacy, 9001), b"t1:u1", NOW_MS, RULES)
    assert verdict.reason == "schema_mismatch"
    assert "event_time (written as string" in verdict.detail and "amount (written as double" in verdict.detail


@pytest.mark.parametrize("field", ["event_id", "tenant_id", "merchant_id", "user_id", "event_type"])
@pytest.mark.parametrize("missing", [None, ""])
def test_missing_required_fields(field, missing):
    record = {**event(), field: missing}
    verdict = verdict_of(record, key=b"t1:u1")
    assert verdict.reason == "missing_field" and field in verdict.detail


def test_money_events_need_amount_and_currency():
    verdict = verdict_of(event("checkout", amount="10.00"))
    assert (verdict.reason, verdict.detail) == ("missing_field", "checkout requires currency")


@pytest.mark.parametrize("amount, currency, reason", [
    ("-1.00", "EUR", "amount_out_of_range"),
    ("0", "EUR", "amount_out_of_range"),
    ("1000000000.01", "EUR", "amount_out_of_range"),
    ("10.00", "XXX", "invalid_currency"),
    ("10.00", "eur", "invalid_currency"),
    ("10.50", "JPY", "amount_precision"),
    ("10.001", "EUR", "amount_precision"),
])
def test_amounts_and_currencies(amount, currency, reason):
    assert reason_of(payment(amount=amount, currency=currency)) == reason


@pytest.mark.parametrize("hostile", ["'; DROP TABLE users;--", "u\x00", "x" * 129, "a b", "t1:u1",
                                     "<script>", "\u202eevil", "../etc"])
def test_hostile_identifiers(hostile):
    verdict = verdict_of(event(user=hostile))
    assert verdict.reason == "invalid_identifier"
    assert len(verdict.detail) < 120  # a 5 KB id is not copied into every DLQ detail


def test_key_must_be_tenant_and_user():
    assert reason_of(event(tenant="t1", user="u1"), key=b"t2:u1") == "key_mismatch"


@pytest.mark.parametrize("changes, reason", [
    ({"type": "teleport"}, "unknown_event_type"),
    ({"type": "login", "status": "maybe"}, "invalid_status"),
    ({"type": "login"}, "invalid_status"),
    ({"type": "page_view", "status": "success"}, "invalid_status"),
    ({"country": "ZZ"}, "invalid_country"),
    ({"latitude": 91.0, "longitude": 0.0}, "invalid_geo"),
    ({"latitude": 10.0}, "invalid_geo"),
    ({"latitude": float("nan"), "longitude": 1.0}, "invalid_geo"),
    ({"latitude": 1.0, "longitude": float("inf")}, "invalid_geo"),
    ({"ip": "999.1.1.1"}, "invalid_ip"),
    ({"ip": "not-an-ip"}, "invalid_ip"),
])
def test_out_of_domain_values(changes, reason):
    assert reason_of(event(**changes)) == reason


def test_event_time_skew_against_the_ingest_clock():
    assert reason_of(event(at_ms=NOW_MS + 4 * 60_000)) is None
    assert reason_of(event(at_ms=NOW_MS + 6 * 60_000)) == "event_time_in_future"
    assert reason_of(event(at_ms=NOW_MS - 6 * 24 * 3600_000)) is None
    assert reason_of(event(at_ms=NOW_MS - 8 * 24 * 3600_000)) == "event_time_too_old"


def test_every_reason_is_declared_for_metrics():
    produced = {"empty_payload", "bad_header", "bad_magic_byte", "unknown_schema_id", "avro_decode_error",
                "schema_mismatch", "oversized_payload", "missing_field", "invalid_identifier", "key_mismatch",
                "unknown_event_type", "invalid_status", "amount_out_of_range", "invalid_currency",
                "amount_precision", "invalid_country", "invalid_geo", "invalid_ip", "event_time_in_future",
                "event_time_too_old", "late_event", "duplicate"}
    assert produced == set(REASONS)
