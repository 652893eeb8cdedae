"""Serialisation: wire format round trips, the fast encoder equals fastavro byte for byte."""

from __future__ import annotations

import io
import random
from decimal import Decimal

import fastavro
import pytest

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
