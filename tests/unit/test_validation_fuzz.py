"""Property-based fuzzing of ingest validation: a verdict for any record, never an exception.

Whatever reaches events.raw, `validate` must return a Verdict whose reason is a declared one (a
metric label) with a short detail; an exception would fail the job, which would then fail on the
same record after every restart (issue 10), and `internal_error` means a bug was hit. Three kinds
of input, each run for a fixed number of cases, derandomized so that CI runs the same cases:
  (a) arbitrary bytes as value and key, any clock;
  (b) the wire-format header with the id of every kind of schema a registry can hold, then the
      body of a real record of some kind: as it is, truncated, padded, bit-flipped or random;
  (c) real records of every event schema version with hostile values (emoji, control
      characters, huge strings, NaN and infinities, extreme numbers and timestamps), which must
      decode and then get a verdict.
VIGIL_FUZZ_SCALE=10 runs ten times as many cases.
"""

from __future__ import annotations

import io
import json
import os
from decimal import Decimal
from typing import Any, Callable

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_records import OTHER_SCHEMAS, SchemaTable, other_kind_value
from tests.scenarios import NOW_MS
from udfs.validation import REASONS, ValidationRules, Verdict, validate
from vigil import event_model as model
from vigil import serde

SCALE = float(os.environ.get("VIGIL_FUZZ_SCALE", "1"))
RULES = ValidationRules()
DECODE_FAILURES = {"empty_payload", "bad_header", "bad_magic_byte", "unknown_schema_id", "avro_decode_error",
                   "schema_mismatch"}


# --- the catalog: the real schemas (vigil/schemas/catalog.json), every other kind, and event
# --- variants Avro can resolve (another namespace; a v3 with nested fields the reader skips) ---------

def _variant(namespace: str | None = None, **extra_fields) -> dict:
    schema = serde.load_schema("event-v2.avsc")
    schema["fields"] += [{"name": n, "type": t, "default": d} for n, (t, d) in extra_fields.items()]
    return {**schema, "namespace": namespace or schema["namespace"]}


_INDEX = json.loads((serde.SCHEMA_DIR / "catalog.json").read_text())
REAL_IDS = {int(i): f for i, f in _INDEX["ids"].items()}
READER_ID = next(i for i, f in REAL_IDS.items() if f == _INDEX["reader"])
VERSION_IDS = [i for i, f in REAL_IDS.items() if f.startswith("event-v")]  # every event version
OTHER_IDS = {kind: 100 + n for n, kind in enumerate(OTHER_SCHEMAS)}
V3_EXTRAS = {"tags": ({"type": "array", "items": "string"}, []), "counts": ({"type": "map", "values": "long"}, {}),
             "address": (["null", {"type": "record", "name": "Address", "fields": [
                 {"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "int"]}]}], None),
             "channel": ({"type": "enum", "name": "Channel", "symbols": ["WEB", "APP"]}, "WEB")}
READABLE = {200: _variant("com.elsewhere"), 201: _variant(**V3_EXTRAS)}
CATALOG = SchemaTable({**{i: serde.load_schema(f) for i, f in REAL_IDS.items()},
                       **{OTHER_IDS[k]: s for k, s in OTHER_SCHEMAS.items()}, **READABLE}, reader_id=READER_ID)
ALL_IDS = sorted([*REAL_IDS, *OTHER_IDS.values(), *READABLE])


def _run(cases: int, strategy: st.SearchStrategy, check: Callable[[Any], None]) -> int:
    """Run `check` on `cases` derandomized examples of `strategy`; how many it ran."""
    ran = 0

    @settings(max_examples=int(cases * SCALE), derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(strategy)
    def property_holds(case):
        nonlocal ran
        ran += 1
        check(case)

    property_holds()
    return ran


def assert_a_proper_verdict(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.reason != "internal_error", verdict.detail
    if verdict.reason is None:
        assert verdict.detail is None and isinstance(verdict.event, dict)
    else:
        assert verdict.reason in REASONS
        assert isinstance(verdict.detail, str) and 0 < len(verdict.detail) <= serde.MAX_DETAIL + 40


# --- (a) arbitrary bytes -------------------------------------------------------------------------------

keys = st.one_of(st.none(), st.binary(max_size=40), st.just(b"t1:u1"))
clocks = st.one_of(st.just(NOW_MS), st.integers(NOW_MS - 10**9, NOW_MS + 10**9), st.integers(-2**63, 2**63 - 1))
any_bytes = st.one_of(
    st.none(), st.binary(max_size=300),
    st.binary(min_size=1, max_size=8).flatmap(lambda b: st.integers(1, 70_000 // len(b) + 2).map(lambda n: b * n)),
    st.binary(max_size=100).map(lambda b: b"\x00" + b),  # past the magic byte, some ids known
)


def test_arbitrary_bytes_get_a_verdict():
    def check(case):
        payload, key, now_ms = case
        assert_a_proper_verdict(validate(payload, key, now_ms, RULES, CATALOG))
    assert _run(3000, st.tuples(any_bytes, keys, clocks), check) >= 3000 * SCALE


# --- (b) every kind of schema id, with bodies of every kind ------------------------------------------

def _body(schema_id: int, record: dict) -> bytes:
    return serde.encode(record, schema_id, CATALOG)[serde.HEADER.size:]


SAMPLE_EVENT = {"event_id": "e1", "event_time": NOW_MS, "tenant_id": "t1", "merchant_id": "m1", "user_id": "u1",
                "event_type": "checkout", "amount": Decimal("12.5000"), "currency": "EUR", "latitude": 1.0,
                "longitude": 2.0, "schema_version": 2, "payment_method": "card", "tags": ["a"], "counts": {"k": 1},
                "address": {"city": "Lyon", "zip": 69000}, "channel": "APP"}
BODIES = ([other_kind_value(kind, 0)[serde.HEADER.size:] for kind in OTHER_SCHEMAS]
          + [_body(i, SAMPLE_EVENT) for i in (*VERSION_IDS, *READABLE)]
          + [_body(9001, {"event_id": "e1", "event_time": "2026-01-01T00:00:00Z", "amount": 1.5})])


@st.composite
def wire_records(draw) -> bytes:
    schema_id = draw(st.one_of(st.sampled_from(ALL_IDS), st.sampled_from(ALL_IDS), st.integers(0, 2**32 - 1)))
    body = draw(st.sampled_from(BODIES))
    change = draw(st.sampled_from(["none", "truncate", "pad", "flip", "random"]))
    if change == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif change == "pad":
        body += draw(st.binary(min_size=1, max_size=64))
    elif change == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    elif change == "random":
        body = draw(st.binary(max_size=200))
    return serde.HEADER.pack(serde.MAGIC_BYTE, schema_id) + body


def test_every_kind_of_schema_id_with_any_body_gets_a_verdict():
    seen: dict[int, set[str | None]] = {}

    def check(case):
        payload, key = case
        verdict = validate(payload, key, NOW_MS, RULES, CATALOG)
        assert_a_proper_verdict(verdict)
        schema_id = serde.HEADER.unpack_from(payload)[1]
        seen.setdefault(schema_id, set()).add(verdict.reason)
        if schema_id in OTHER_IDS.values():  # decided from the schema, whatever the bytes
            assert verdict.reason == "schema_mismatch" and verdict.detail.startswith(f"schema id {schema_id} ")
        elif schema_id not in ALL_IDS:
            assert verdict.reason == "unknown_schema_id"
    assert _run(4000, st.tuples(wire_records(), keys), check) >= 4000 * SCALE
    assert set(ALL_IDS) <= set(seen), f"ids never drawn: {set(ALL_IDS) - set(seen)}"


# --- (c) real records of every event schema version, hostile values ------------------------------------

def _hostile(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A value for a text field: valid, absent or hostile (emoji, control characters, bidi
    overrides, separators, huge)."""
    return st.one_of(
        valid, st.none(), st.just(""), st.text(max_size=30),
        st.text(st.sampled_from("\x00\x1b\n\t\u202e\ufeff:;'\"<>%$\\ \U0001F4B3\U0001F525\u00e9\u4e2d"), max_size=20),
        st.integers(60_000, 70_000).map(lambda n: "x" * n),
    )


def _one_of_these(values) -> st.SearchStrategy:
    return st.sampled_from(sorted(values))


identifiers = st.one_of(st.integers(0, 10**6).map(lambda n: f"u{n}"), st.sampled_from(["t1", "m-1", "a.b@c_d", "Z" * 128]))
floats = st.one_of(st.none(), st.floats(), st.floats(-90, 90), st.sampled_from([float("nan"), float("inf"),
                                                                                 -float("inf"), -0.0, 5e-324]))
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999  # 0001-01-01 and 9999-12-31, datetime's range
event_times = st.one_of(st.integers(NOW_MS - 10 * 86_400_000, NOW_MS + 3_600_000), st.integers(MIN_MS, MAX_MS),
                        st.sampled_from([MIN_MS, MAX_MS, 0, -1, NOW_MS]))
# The schema's decimal(18, 4): fastavro refuses to write more digits (tests/hostile_records.py writes more).
amounts = st.one_of(
    st.decimals(Decimal("-1e12"), Decimal("1e12"), places=4), st.decimals(Decimal("0.01"), Decimal("10000"), places=2),
    st.sampled_from([Decimal(0), Decimal("0.0001"), Decimal(model.MAX_AMOUNT), Decimal(model.MAX_AMOUNT) + Decimal("0.0001"),
                     Decimal("-0.0001"), Decimal("99999999999999.9999"), Decimal("-99999999999999.9999")]),
)
ips = st.one_of(st.ip_addresses().map(str), st.sampled_from(["999.1.1.1", "fe80::1%eth0", "::", "1.2.3"]))

# Every field: a plausible value (so that records get past the first rules) and hostile ones.
PLAUSIBLE = {
    "event_id": identifiers, "event_time": st.integers(NOW_MS - 3_600_000, NOW_MS), "tenant_id": st.just("t1"),
    "merchant_id": identifiers, "user_id": st.just("u1"), "session_id": st.none() | identifiers,
    "device_id": st.none() | identifiers, "ip": st.none() | st.just("10.0.0.1"),
    "card_fingerprint": st.none() | identifiers, "event_type": _one_of_these(model.EVENT_TYPES),
    "amount": st.decimals(Decimal("0.01"), Decimal("5000"), places=2), "currency": _one_of_these(["EUR", "USD"]),
    "country": st.none() | st.just("FR"), "product_id": st.none() | identifiers,
    "category": st.none() | st.just("books"), "schema_version": st.just(2),
    "payment_method": st.none() | st.just("card"), "loyalty_tier": st.none() | st.just("gold"),
}
STATUS_OF = {t: min(model.STATUSES[t]) if t in model.STATUSES else None for t in model.EVENT_TYPES}
PLACES = st.one_of(st.just((None, None)), st.tuples(st.floats(-90, 90), st.floats(-180, 180)))
HOSTILE = {
    **{name: _hostile(identifiers) for name in ("event_id", "tenant_id", "merchant_id", "user_id", "session_id",
                                                "device_id", "card_fingerprint", "product_id")},
    "event_time": st.none() | event_times, "ip": _hostile(ips), "event_type": _hostile(_one_of_these(model.EVENT_TYPES)),
    "status": _hostile(_one_of_these(set().union(*model.STATUSES.values()))), "amount": st.none() | amounts,
    "currency": _hostile(_one_of_these(model.CURRENCY_MINOR_UNITS)), "country": _hostile(_one_of_these(model.COUNTRIES)),
    "latitude": floats, "longitude": floats, "category": _hostile(st.just("books")),
    "schema_version": st.integers(-2**31, 2**31 - 1), "payment_method": _hostile(st.just("card")),
    "loyalty_tier": _hostile(st.just("gold")),
}
V3_VALUES = {
    "tags": st.lists(st.text(max_size=5), max_size=5),
    "counts": st.dictionaries(st.text(max_size=5), st.integers(-2**63, 2**63 - 1), max_size=3),
    "address": st.none() | st.fixed_dictionaries({"city": st.text(max_size=10),
                                                 "zip": st.none() | st.integers(-2**31, 2**31 - 1)}),
    "channel": st.sampled_from(["WEB", "APP"]),
}


def records(version_id: int) -> st.SearchStrategy[dict]:
    """A plausible record of the version with up to six fields made hostile."""
    names = [f["name"] for f in CATALOG.writer_schema(version_id)["fields"]]
    fields = st.fixed_dictionaries({n: PLAUSIBLE[n] if n in PLAUSIBLE else V3_VALUES[n]
                                    for n in names if n not in ("status", "latitude", "longitude")})
    hostile = st.lists(st.sampled_from([n for n in names if n in HOSTILE]).flatmap(
        lambda n: st.tuples(st.just(n), HOSTILE[n])), max_size=6)

    def assemble(parts) -> dict:
        record, (lat, lon), changes = parts
        return {**record, "status": STATUS_OF[record["event_type"]], "latitude": lat, "longitude": lon, **dict(changes)}
    return st.tuples(fields, PLACES, hostile).map(assemble)


def _written(record: dict, schema_id: int) -> bytes:
    """Encoded by fastavro itself (not our encoder): what any producer could write."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, CATALOG.writer_schema(schema_id), record)
    return serde.HEADER.pack(serde.MAGIC_BYTE, schema_id) + body.getvalue()


def event_cases() -> st.SearchStrategy:
    with_key = st.one_of(st.none(), st.none(), keys)  # None: tenant_id:user_id, as producers write it
    return st.one_of([st.tuples(st.just(v), records(v), with_key, clocks) for v in (*VERSION_IDS, *READABLE)])


def test_records_of_every_event_version_with_hostile_values_decode_and_get_a_verdict():
    versions_seen, reasons_seen = set(), set()

    def check(case):
        schema_id, record, key, now_ms = case
        payload = _written(record, schema_id)
        if key is None:
            key = f"{record['tenant_id']}:{record['user_id']}".encode()
        verdict = validate(payload, key, now_ms, RULES, CATALOG)
        assert_a_proper_verdict(verdict)
        versions_seen.add(schema_id)
        reasons_seen.add(verdict.reason)
        if verdict.reason == "oversized_payload":
            assert len(payload) > RULES.max_payload_bytes
            return
        assert verdict.reason not in DECODE_FAILURES, verdict.detail
        assert verdict.event["event_id"] == record["event_id"] and verdict.event["amount"] == record["amount"]
    assert _run(4000, event_cases(), check) >= 4000 * SCALE
    assert versions_seen == {*VERSION_IDS, *READABLE}
    assert None in reasons_seen and len(reasons_seen) >= 12, reasons_seen  # the cases reach every rule


def test_timestamps_beyond_datetime_range_get_a_verdict():
    """Avro's long holds event times no datetime can: years past 9999 or before 1. Rejected, never a crash."""
    def check(case):
        schema_id, at_ms = case
        payload = _written({**SAMPLE_EVENT, "event_time": at_ms}, schema_id)
        verdict = validate(payload, b"t1:u1", NOW_MS, RULES, CATALOG)
        assert_a_proper_verdict(verdict)
        assert verdict.reason in {"avro_decode_error", "event_time_in_future", "event_time_too_old"}
    beyond = st.one_of(st.integers(MAX_MS + 1, 2**63 - 1), st.integers(-2**63, MIN_MS - 1))
    assert _run(200, st.tuples(st.sampled_from([*VERSION_IDS, *READABLE]), beyond), check) >= 200 * SCALE
