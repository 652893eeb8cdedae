"""Validation rules, one scenario each: accepted events, and every way input goes bad."""

from __future__ import annotations

import pytest

from tests.hostile_records import OTHER_SCHEMAS, SchemaTable, catalog_for, hostile_records
from tests.scenarios import NOW_MS, event, payment, wire
from udfs import validation
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
                "event_time_too_old", "late_event", "duplicate", "internal_error"}
    assert produced == set(REASONS)


# --- a verdict for any input (issue 10) ------------------------------------------------------------------

def test_a_record_whose_schema_id_names_a_string_schema_is_a_schema_mismatch():
    """Issue 10: a schema registered under another subject, not a record, crashed validation."""
    catalog = SchemaTable({2: serde.load_schema("event-v2.avsc"), 7: "string"}, reader_id=2)
    verdict = validate(b"\x00\x00\x00\x00\x07\x0at1:u1", b"t1:u1", NOW_MS, RULES, catalog)
    assert verdict == ("schema_mismatch", "schema id 7 is a string schema, not an event record", None)


def test_hostile_records_get_the_verdicts_they_expect():
    """tests/hostile_records.py, checked offline with the same schemas (the integration test sends
    them through the real job with the registry's ids)."""
    ids = {kind: 300 + i for i, kind in enumerate(OTHER_SCHEMAS)}
    catalog = catalog_for(ids, v1_id=11, v2_id=12)
    records = hostile_records(ids, 11, 12, NOW_MS)
    assert records == hostile_records(ids, 11, 12, NOW_MS)  # deterministic
    got = [(r.description, validate(r.value, r.key, NOW_MS, RULES, catalog).reason) for r in records]
    assert got == [(r.description, r.expected) for r in records]
    assert {r.expected for r in records} >= {None, "schema_mismatch", "invalid_geo", "key_mismatch", "empty_payload"}


def test_a_bug_costs_one_record_not_the_job(monkeypatch, caplog):
    def broken(*args):
        raise ZeroDivisionError("division by zero\n" + "second line " * 1000)
    monkeypatch.setattr(validation, "_check_fields", broken)
    verdict = validate(wire(event())[1], b"t1:u1", NOW_MS, RULES)
    assert verdict == ("internal_error", "ZeroDivisionError: division by zero", None)
    assert "internal_error" in caplog.text  # with the traceback, to find the bug


class BrokenCatalog(SchemaTable):
    def __init__(self, error: BaseException | None = None, schema=None):
        super().__init__({2: serde.load_schema("event-v2.avsc")}, reader_id=2)
        self.error, self.schema = error, schema

    def writer_schema(self, schema_id):
        if self.error is not None:
            raise self.error
        return self.schema


@pytest.mark.parametrize("error", [ConnectionRefusedError("down"), TimeoutError("timed out"),
                                   RuntimeError("503 Service Unavailable"), ValueError("not JSON")])
def test_a_catalog_that_cannot_answer_fails_the_job_instead_of_rejecting_the_event(error):
    """A valid event must never go to the DLQ because the registry is down: the job fails and
    retries from its checkpoint. An OSError propagates as it is, anything else as CatalogUnavailable."""
    with pytest.raises((type(error), serde.CatalogUnavailable)) as raised:
        validate(wire(event())[1], b"t1:u1", NOW_MS, RULES, BrokenCatalog(error))
    assert isinstance(raised.value, serde.OUTAGES)


@pytest.mark.parametrize("schema", [None, 42, {}, {"type": 5}, {"type": "record"}, {"type": "record", "name": "Event",
                                    "fields": [{"type": "string"}]}, ["null"], object()])
def test_a_catalog_answering_garbage_gets_a_verdict(schema):
    verdict = validate(wire(event())[1], b"t1:u1", NOW_MS, RULES, BrokenCatalog(schema=schema))
    assert verdict.reason == "schema_mismatch" and verdict.detail.startswith("schema id 2 is ")


def test_an_unknown_id_from_the_catalog_is_bad_input():
    assert validate(wire(event())[1], b"t1:u1", NOW_MS, RULES, BrokenCatalog(KeyError(2))).reason == "unknown_schema_id"


@pytest.mark.parametrize("now_ms", [0, -2**63, 2**63 - 1, 10**30])
def test_any_clock_gets_a_verdict(now_ms):
    assert validate(wire(event())[1], b"t1:u1", now_ms, RULES).reason in REASONS + (None,)


def test_huge_amounts_give_short_details():
    record = payment(amount="9" * 5000)
    verdict = validate(serde.encode(record), b"t1:u1", NOW_MS, RULES)
    assert verdict.reason == "amount_out_of_range" and len(verdict.detail) < 120
