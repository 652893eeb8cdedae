"""Event serialisation: Confluent wire format (magic byte 0, big-endian 4-byte schema id, Avro body).

All encoding and decoding of events goes through this module. Schemas are found by id through a
`SchemaCatalog`: `LocalSchemaCatalog` reads the versioned .avsc files under vigil/schemas/ (offline:
unit tests, tools); `vigil.registry.catalog.RegistrySchemaCatalog` asks the schema registry, as
running producers and jobs do. Records written with an older schema are resolved to the reader's.

>>> catalog = LocalSchemaCatalog()
>>> payload = encode({"event_id": "e1", "tenant_id": "t1"}, catalog=catalog)
>>> payload[:5]
b'\\x00\\x00\\x00\\x00\\x02'
>>> decode(payload, catalog=catalog)["event_id"]
'e1'
"""

from __future__ import annotations

import io
import json
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Protocol

import fastavro
from fastavro.read import SchemaResolutionError

from vigil import avro_codec

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")  # magic byte, schema id


class DecodeError(ValueError):
    """A payload that cannot become an event; `reason` is a stable code for metrics and the DLQ."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SchemaCatalog(Protocol):
    def writer_schema(self, schema_id: int) -> Any: ...
    def reader_schema(self) -> Any: ...
    def id_of_reader(self) -> int: ...


def load_schema(relative_path: str) -> dict:
    return json.loads((SCHEMA_DIR / relative_path).read_text())


class LocalSchemaCatalog:
    """Schema ids from vigil/schemas/catalog.json; parsed once per process."""

    def __init__(self, index_file: Path = SCHEMA_DIR / "catalog.json"):
        index = json.loads(index_file.read_text())
        self._files = {int(k): v for k, v in index["ids"].items()}
        self._reader_id = next(i for i, f in self._files.items() if f == index["reader"])
        self._parsed: dict[int, Any] = {}

    def writer_schema(self, schema_id: int) -> Any:
        if schema_id not in self._parsed:
            if schema_id not in self._files:
                raise KeyError(schema_id)
            self._parsed[schema_id] = fastavro.parse_schema(load_schema(self._files[schema_id]))
        return self._parsed[schema_id]

    def id_of_reader(self) -> int:
        return self._reader_id

    def reader_schema(self) -> Any:
        return self.writer_schema(self.id_of_reader())


@lru_cache(maxsize=1)
def default_catalog() -> LocalSchemaCatalog:
    return LocalSchemaCatalog()


def record_timestamp(event_time_ms: int, sent_at_ms: int) -> int:
    """The Kafka record timestamp producers must set: the event time, but never later than the
    moment the record is sent. Jobs take event-time watermarks from record timestamps, so one
    device with a clock hours ahead must not push the watermark into the future (which would make
    every other event late); its event_time field is still checked and rejected by ingest.

    >>> record_timestamp(1_000, 5_000), record_timestamp(9_000, 5_000)
    (1000, 5000)
    """
    return min(event_time_ms, sent_at_ms)


_COMPILED: dict[tuple[Callable, int, int], Callable | None] = {}


def _compiled(compile_codec: Callable, catalog: SchemaCatalog, schema_id: int) -> Callable | None:
    """avro_codec's encoder or decoder for a schema id, compiled once; None if unsupported."""
    key = (compile_codec, id(catalog), schema_id)
    if key not in _COMPILED:
        try:
            _COMPILED[key] = compile_codec(catalog.writer_schema(schema_id))
        except avro_codec.Unsupported:
            _COMPILED[key] = None
    return _COMPILED[key]


def encode(record: dict, schema_id: int | None = None, catalog: SchemaCatalog | None = None) -> bytes:
    """Encode `record` with the schema `schema_id` (default: the reader schema) in wire format."""
    catalog = catalog or default_catalog()
    schema_id = catalog.id_of_reader() if schema_id is None else schema_id
    header = HEADER.pack(MAGIC_BYTE, schema_id)
    fast = _compiled(avro_codec.compile_encoder, catalog, schema_id)
    if fast is not None:
        return fast(record, header)
    out = io.BytesIO()
    out.write(header)
    fastavro.schemaless_writer(out, catalog.writer_schema(schema_id), record)
    return out.getvalue()


def decode(payload: bytes, catalog: SchemaCatalog | None = None) -> dict:
    """Decode a wire-format payload into a dict shaped by the reader schema, or raise DecodeError."""
    catalog = catalog or default_catalog()
    if not payload:
        raise DecodeError("empty_payload", "the record has no value")
    if len(payload) < HEADER.size:
        raise DecodeError("bad_header", f"{len(payload)} bytes is shorter than the 5-byte header")
    magic, schema_id = HEADER.unpack_from(payload)
    if magic != MAGIC_BYTE:
        raise DecodeError("bad_magic_byte", f"first byte is 0x{payload[0]:02x}, expected 0x00")
    try:
        writer = catalog.writer_schema(schema_id)
    except KeyError:
        raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not known") from None
    reader = catalog.reader_schema()
    added = _added_fields(catalog, schema_id, writer, reader) if writer is not reader else None
    if writer is reader or added is not None:
        fast = _compiled(avro_codec.compile_decoder, catalog, schema_id)
        if fast is not None:
            try:
                record = fast(payload, HEADER.size)
                if added:
                    record.update(added)
                return record
            except Exception as exc:  # noqa: BLE001 - corrupt bytes raise several types
                raise DecodeError("avro_decode_error", f"{type(exc).__name__}: {_first_line(exc)}") from None
    body = io.BytesIO(payload)
    body.seek(HEADER.size)
    try:
        if writer is reader:
            record = fastavro.schemaless_reader(body, writer, None)
        else:
            record = fastavro.schemaless_reader(body, writer, reader)
    except SchemaResolutionError:
        raise DecodeError("schema_mismatch", _mismatched_fields(schema_id, writer, reader)) from None
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on corrupt bytes
        raise DecodeError("avro_decode_error", f"{type(exc).__name__}: {_first_line(exc)}") from None
    if body.tell() != len(payload):
        raise DecodeError("avro_decode_error", f"{len(payload) - body.tell()} trailing bytes after the record")
    return record


def decode_as_written(payload: bytes, catalog: SchemaCatalog) -> dict:
    """Decode a wire-format payload with its own writer schema (no reader schema): for tools and
    tests reading a topic whose schema another component registered (events.clean is written by
    Flink's avro-confluent format). Raises DecodeError like `decode`."""
    if not payload or len(payload) < HEADER.size or payload[0] != MAGIC_BYTE:
        raise DecodeError("bad_header", "not Confluent wire format")
    schema_id = HEADER.unpack_from(payload)[1]
    try:
        writer = catalog.writer_schema(schema_id)
    except KeyError:
        raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not known") from None
    body = io.BytesIO(payload)
    body.seek(HEADER.size)
    try:
        return fastavro.schemaless_reader(body, writer, None)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on corrupt bytes
        raise DecodeError("avro_decode_error", f"{type(exc).__name__}: {_first_line(exc)}") from None


_ADDED: dict[tuple[int, int], dict | None] = {}


def _added_fields(catalog: SchemaCatalog, schema_id: int, writer: Any, reader: Any) -> dict | None:
    """The reader's extra fields with their defaults, when the reader is the writer plus fields
    with defaults (the usual evolution step, v1 read as v2); else None.

    In that case Avro resolution means: decode as written, then add the defaults. So records of an
    older version take the compiled decoder too instead of fastavro's generic resolver.
    """
    key = (id(catalog), schema_id)
    if key not in _ADDED:
        _ADDED[key] = _extension_defaults(writer, reader)
    return _ADDED[key]


def _extension_defaults(writer: Any, reader: Any) -> dict | None:
    if not (isinstance(writer, dict) and isinstance(reader, dict)) or writer.get("name") != reader.get("name"):
        return None
    written = {f["name"]: json.dumps(f["type"], sort_keys=True) for f in writer.get("fields", [])}
    read = {f["name"]: f for f in reader.get("fields", [])}
    if any(name not in read or json.dumps(read[name]["type"], sort_keys=True) != type_
           for name, type_ in written.items()):
        return None
    extra = {name: f for name, f in read.items() if name not in written}
    # Only defaults that mean the same in JSON and in Python (null, numbers, strings, booleans).
    if any("default" not in f or isinstance(f["default"], (dict, list)) for f in extra.values()):
        return None
    return {name: f["default"] for name, f in extra.items()}


@lru_cache(maxsize=256)
def _mismatched_fields_cached(schema_id: int, writer_fields: str, reader_fields: str) -> str:
    writer, reader = json.loads(writer_fields), json.loads(reader_fields)
    names = [f"{name} (written as {_type_name(writer[name])}, read as {_type_name(reader[name])})"
             for name in reader if name in writer and writer[name] != reader[name]]
    missing = [name for name in reader if name not in writer]
    detail = f"schema id {schema_id} cannot be read as the event schema; fields with other types: "
    detail += ", ".join(names) or "none"
    if missing:
        detail += "; fields it lacks: " + ", ".join(missing)
    return detail


def _mismatched_fields(schema_id: int, writer: Any, reader: Any) -> str:
    def types(schema: Any) -> str:
        return json.dumps({f["name"]: f["type"] for f in schema["fields"]}, sort_keys=True)
    return _mismatched_fields_cached(schema_id, types(writer), types(reader))


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return "|".join(_type_name(t) for t in avro_type if t != "null") or "null"
    if isinstance(avro_type, dict):
        return avro_type.get("logicalType", avro_type.get("type", "?"))
    return str(avro_type)


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0][:300]
