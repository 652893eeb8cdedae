"""Serialisation: wire format round trips, the fast encoder equals fastavro byte for byte."""

from __future__ import annotations

import io
import random
from decimal import Decimal

import fastavro
import pytest

from tests.hostile_records import OTHER_SCHEMAS, SchemaTable, catalog_for, other_kind_value, varint
from tests.scenarios import event, payment
from udfs.validation import to_millis
from vigil import serde
from vigil.avro_codec import Unsupported, compile_encoder


def test_round_trip_keeps_every_field():
    record = payment(amount="1234.5678", currency="CLF", session_id="s1", device_id="d1", ip="10.0.0.1",
                     country="CL", latitude=-33.45, longitude=-70.66, product_id="p1", category="books",
                     status=None, schema_version=1)
    decoded = serde.decode(serde.encode(record))
    assert to_millis(decoded["event_time"]) == record["event_time"]
    for name, value in record.items():
        if name != "event_time":
            assert decoded[name] == value, name


def test_wire_format_header():
    payload = serde.encode(event())
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == 2  # the offline catalog's v2


def _random_event(rng: random.Random) -> dict:
    def maybe(value):
        return value if rng.random() < 0.7 else None
    return {
        "event_id": maybe("e" + "x" * rng.randrange(0, 100)), "event_time": maybe(rng.randrange(-2**40, 2**42)),
        "tenant_id": maybe("t\u00e9\u4e2d"), "merchant_id": maybe("m"), "user_id": maybe("u" * rng.randrange(200)),
        "session_id": None, "device_id": maybe("d"), "ip": maybe("1.2.3.4"), "card_fingerprint": maybe("c"),
        "event_type": maybe("checkout"), "status": maybe("approved"),
        "amount": maybe(Decimal(rng.randrange(-10**12, 10**12)).scaleb(-4)),
        "currency": maybe("EUR"), "country": maybe("FR"), "latitude": maybe(rng.uniform(-90, 90)),
        "longitude": maybe(rng.uniform(-180, 180)), "product_id": maybe("p"), "category": maybe("c" * 70),
        "schema_version": rng.randrange(-70, 70),
        "payment_method": maybe("wallet"), "loyalty_tier": maybe("gold"),
    }


def test_fast_encoder_writes_the_same_bytes_as_fastavro():
    schema = serde.default_catalog().reader_schema()
    rng = random.Random(42)
    for _ in range(2000):
        record = _random_event(rng)
        expected = io.BytesIO()
        fastavro.schemaless_writer(expected, schema, record)
        assert serde.encode(record)[5:] == expected.getvalue()


def test_fast_decoder_reads_what_fastavro_reads():
    schema = serde.default_catalog().reader_schema()
    rng = random.Random(43)
    for _ in range(2000):
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, _random_event(rng))
        expected = fastavro.schemaless_reader(io.BytesIO(body.getvalue()), schema, None)
        assert serde.decode(b"\x00\x00\x00\x00\x02" + body.getvalue()) == expected


def test_v1_records_are_resolved_to_the_v2_reader_like_avro_resolution_does():
    """v1 is v2 minus two optional fields: the compiled path (decode, add defaults) must equal
    fastavro's writer -> reader resolution."""
    catalog = serde.default_catalog()
    v1, v2 = catalog.writer_schema(1), catalog.reader_schema()
    rng = random.Random(45)
    for _ in range(1000):
        record = _random_event(rng)
        payload = serde.encode(record, 1)
        expected = fastavro.schemaless_reader(io.BytesIO(payload[5:]), v1, v2)
        decoded = serde.decode(payload)
        assert decoded == expected
        assert decoded["payment_method"] is None and decoded["loyalty_tier"] is None


def test_fast_decoder_rejects_every_truncation_and_corruption():
    payload = serde.encode(payment(amount="12.50", device_id="d1", category="books"))
    for cut in range(5, len(payload)):
        with pytest.raises(serde.DecodeError):
            serde.decode(payload[:cut])
    rng = random.Random(44)
    for _ in range(3000):  # random bytes never crash the decoder, they get a reason
        garbage = b"\x00\x00\x00\x00" + bytes([rng.choice([1, 2])]) + rng.randbytes(rng.randrange(0, 60))
        try:
            serde.decode(garbage)
        except serde.DecodeError as error:
            assert error.reason == "avro_decode_error"


def test_fast_encoder_refuses_what_it_cannot_write():
    with pytest.raises(Unsupported):
        compile_encoder({"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "map", "values": "int"}}]})


def test_foreign_schema_falls_back_and_is_resolved_on_decode():
    payload = serde.encode({"event_id": "e1", "event_time": "2026-01-01T00:00:00Z", "amount": 1.0}, 9001)
    with pytest.raises(serde.DecodeError) as error:
        serde.decode(payload)
    assert error.value.reason == "schema_mismatch"


def test_record_timestamp_never_runs_ahead_of_the_send_time():
    assert serde.record_timestamp(1_000, 2_000) == 1_000
    assert serde.record_timestamp(5_000, 2_000) == 2_000


# --- writer schemas the reader cannot resolve (issue 10) ----------------------------------------------

OTHER_IDS = {kind: 100 + i for i, kind in enumerate(OTHER_SCHEMAS)}
CATALOG = catalog_for(OTHER_IDS, v1_id=1, v2_id=2)


@pytest.mark.parametrize("kind", OTHER_SCHEMAS)
def test_a_schema_of_another_kind_is_a_schema_mismatch_that_says_what_it_is(kind):
    for payload in (other_kind_value(kind, OTHER_IDS[kind]), serde.HEADER.pack(0, OTHER_IDS[kind]) + b"\xff" * 9):
        with pytest.raises(serde.DecodeError) as error:
            serde.decode(payload, CATALOG)
        assert error.value.reason == "schema_mismatch"
        assert error.value.detail.startswith(f"schema id {OTHER_IDS[kind]} ")


@pytest.mark.parametrize("kind, detail", [
    ("string", "schema id 107 is a string schema, not an event record"),
    ("enum", "schema id 108 is the enum com.example.Colour, not an event record"),
    ("array", "schema id 109 is an array schema, not an event record"),
    ("union", "schema id 112 is a union schema (null|string|long), not an event record"),
    ("timestamp", "schema id 113 is a long (timestamp-millis) schema, not an event record"),
    ("record_other_name", "schema id 114 is the record com.example.shop.Order, "
                          "not the event record dev.vigil.events.Event"),
    ("event_recursive", "schema id 116 is the record dev.vigil.events.Event, which nests the record "
                        "dev.vigil.events.Event in itself (unbounded depth)"),
])
def test_the_detail_names_the_schema(kind, detail):
    with pytest.raises(serde.DecodeError) as error:
        serde.decode(other_kind_value(kind, OTHER_IDS[kind]), CATALOG)
    assert error.value.detail == detail


def _event_variant(**types) -> dict:
    """Event v2 with some field types replaced (None: field removed) or added."""
    schema = serde.load_schema("event-v2.avsc")
    fields = [{"name": f["name"], "type": types[f["name"]]} if f["name"] in types else f
              for f in schema["fields"] if types.get(f["name"], "") is not None]
    known = {f["name"] for f in fields}
    fields += [{"name": n, "type": t} for n, t in types.items() if n not in known and t is not None]
    return {**schema, "fields": fields}


@pytest.mark.parametrize("types, field", [
    # fastavro "resolves" these into values of other Python types (bytes for a decimal, a UUID, a
    # date, a naive datetime), which validation would trip on: the schema is refused as a whole.
    ({"amount": ["null", "bytes"]}, "amount (written as bytes, read as decimal)"),
    ({"amount": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}]}, "amount"),
    ({"event_id": {"type": "string", "logicalType": "uuid"}}, "event_id (written as uuid, read as string)"),
    ({"event_time": {"type": "int", "logicalType": "date"}}, "event_time (written as date"),
    ({"event_time": ["null", {"type": "long", "logicalType": "local-timestamp-millis"}]}, "event_time"),
    ({"event_time": "long"}, "event_time (written as long, read as timestamp-millis)"),
    ({"event_id": ["null", "int", "string"]}, "event_id (written as int|string, read as string)"),
    ({"schema_version": ["null", "int"]}, "schema_version"),
    ({"latitude": "string"}, "latitude (written as string, read as double)"),
    ({"category": {"type": "enum", "name": "Cat", "symbols": ["A"]}}, "category (written as enum"),
])
def test_a_record_named_like_the_event_whose_fields_cannot_be_read_names_them(types, field):
    catalog = SchemaTable({2: serde.load_schema("event-v2.avsc"), 5: _event_variant(**types)}, reader_id=2)
    with pytest.raises(serde.DecodeError) as error:  # decided from the schema: whatever the bytes
        serde.decode(serde.HEADER.pack(0, 5) + b"\x00" * 30, catalog)
    assert error.value.reason == "schema_mismatch" and field in error.value.detail


def test_records_avro_can_resolve_are_read_through_fastavro():
    """Another namespace, promotions (int to double, non-null to nullable) and fields the reader
    does not know, nested ones included: decoded like any event."""
    v3 = _event_variant(latitude="int", longitude="float", event_id="string", schema_version="int",
                        tags={"type": "array", "items": "string"}, extra={"type": "map", "values": "long"},
                        address={"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]})
    v3["namespace"] = "com.other"
    catalog = SchemaTable({2: serde.load_schema("event-v2.avsc"), 6: v3}, reader_id=2)
    record = {**payment(amount="12.50", latitude=48, longitude=2.5), "schema_version": 2, "tags": ["a", "b"],
              "extra": {"k": 1}, "address": {"city": "Paris"}}
    decoded = serde.decode(serde.encode(record, 6, catalog), catalog)
    assert decoded["latitude"] == 48.0 and isinstance(decoded["latitude"], float)
    assert decoded["amount"] == Decimal("12.50") and "tags" not in decoded
    with pytest.raises(serde.DecodeError) as error:
        serde.decode(serde.encode(record, 6, catalog) + b"\x00", catalog)
    assert error.value.reason == "avro_decode_error" and "trailing" in error.value.detail


def test_unsafe_schemas_are_refused_before_a_byte_is_read():
    """A recursive schema with a few KB nested deep kills the process inside fastavro (C stack);
    an array of nulls reads as many items as its count claims (here 2^31, minutes and gigabytes)."""
    deep = serde.HEADER.pack(0, OTHER_IDS["event_recursive"]) + b"\x02\x02" + b"\x02" * 60_000 + b"\x00"
    billions = serde.HEADER.pack(0, OTHER_IDS["event_zero_size_array"]) + b"\x00\xfe\xff\xff\xff\x0f\x00"
    for payload in (deep, billions):
        for decode in (lambda p: serde.decode(p, CATALOG), lambda p: serde.decode_as_written(p, CATALOG)):
            with pytest.raises(serde.DecodeError) as error:
                decode(payload)
            assert error.value.reason == "schema_mismatch"


def test_decode_as_written_reads_records_only_and_all_of_them():
    assert serde.decode_as_written(serde.encode(event(), 1, CATALOG), CATALOG)["event_id"] == "e1"
    other = serde.decode_as_written(other_kind_value("record_other_name", OTHER_IDS["record_other_name"]), CATALOG)
    assert other == {"event_id": "e1", "total": 12.5}
    cases = [(other_kind_value("string", OTHER_IDS["string"]), "schema_mismatch"),
             (serde.encode(event(), 1, CATALOG) + b"\x00", "avro_decode_error"),
             (serde.HEADER.pack(0, 99_999) + b"\x00", "unknown_schema_id"),
             (b"", "empty_payload"), (b"\x01\x00\x00\x00\x01", "bad_magic_byte")]
    for payload, reason in cases:
        with pytest.raises(serde.DecodeError) as error:
            serde.decode_as_written(payload, CATALOG)
        assert error.value.reason == reason


# --- the catalog failing: an outage, never a verdict on the record ------------------------------------

class FailingCatalog(SchemaTable):
    def __init__(self, error: Exception):
        super().__init__({2: serde.load_schema("event-v2.avsc")}, reader_id=2)
        self.error = error

    def writer_schema(self, schema_id):
        raise self.error


def test_an_unknown_id_is_bad_input_any_other_catalog_failure_an_outage():
    payload = serde.encode(event())
    with pytest.raises(serde.DecodeError) as error:
        serde.decode(payload, FailingCatalog(KeyError(2)))
    assert error.value.reason == "unknown_schema_id"
    down = ConnectionRefusedError("registry unreachable")
    with pytest.raises(ConnectionRefusedError) as raised:  # an OSError propagates as it is
        serde.decode(payload, FailingCatalog(down))
    assert raised.value is down
    with pytest.raises(serde.CatalogUnavailable, match="schema id 2: ValueError: 503 from the registry"):
        serde.decode(payload, FailingCatalog(ValueError("503 from the registry")))
    with pytest.raises(serde.DecodeError) as error:  # a Protobuf schema's id: bad input, not an outage
        serde.decode(payload, FailingCatalog(serde.UnreadableSchema("a PROTOBUF schema, not Avro")))
    assert (error.value.reason, error.value.detail) == ("schema_mismatch", "schema id 2: a PROTOBUF schema, not Avro")


def test_caches_follow_the_schema_object_not_the_catalog_id():
    """A catalog's id() is reused once it is garbage-collected: a cached decoder must never serve
    another schema that happens to have the same (catalog id, schema id)."""
    catalog = SchemaTable({2: serde.load_schema("event-v2.avsc"), 7: "string"}, reader_id=2)
    with pytest.raises(serde.DecodeError):
        serde.decode(serde.HEADER.pack(0, 7) + b"\x02x", catalog)
    catalog._parsed[7] = catalog._parsed[2]  # the same catalog object now says id 7 is event v2
    assert serde.decode(serde.encode(event(), 7, catalog), catalog)["event_id"] == "e1"


def test_details_are_bounded_whatever_the_schema_name():
    name = "com.x." + "A" * 100_000
    catalog = SchemaTable({2: serde.load_schema("event-v2.avsc"),
                           8: {"type": "record", "name": name, "fields": []}}, reader_id=2)
    with pytest.raises(serde.DecodeError) as error:
        serde.decode(serde.HEADER.pack(0, 8), catalog)
    assert error.value.reason == "schema_mismatch" and len(error.value.detail) <= serde.MAX_DETAIL


def test_an_int_no_avro_int_can_hold_is_a_decode_error():
    """The compiled decoder reads 10-byte varints into any integer field; 2^68 as schema_version
    would pass validation and then fail the job as a BIGINT."""
    payload = serde.encode(event())
    assert payload.endswith(b"\x02\x00\x00")  # schema_version 1, no payment_method, no loyalty_tier
    for value in (2**31, -2**31 - 1, 2**68):
        with pytest.raises(serde.DecodeError, match="schema_version: .* is out of range"):
            serde.decode(payload[:-3] + varint(value) + b"\x00\x00")
    assert serde.decode(serde.encode(event(schema_version=-2**31)))["schema_version"] == -2**31
