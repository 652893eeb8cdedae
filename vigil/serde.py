"""Event serialisation: Confluent wire format (magic byte 0, big-endian 4-byte schema id, Avro body).

All encoding and decoding of events goes through this module. Schemas are found by id through a
`SchemaCatalog`: `LocalSchemaCatalog` reads the versioned .avsc files under vigil/schemas/ (offline:
unit tests, tools); `vigil.registry.catalog.RegistrySchemaCatalog` asks the schema registry, as
running producers and jobs do. Records written with an older schema are resolved to the reader's.

Decoding fails in one of two ways, which callers must keep apart:
- bad input (bytes, or a schema id whose schema the reader cannot resolve): `DecodeError` with a
  stable `reason`, a dead-letter reason;
- the catalog cannot answer (registry down): one of `OUTAGES` propagates. The job fails and
  retries; a valid event must never reach the dead-letter topic because of an outage.

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
MAX_DETAIL = 400  # details land in every DLQ record: a hostile schema name must not make them huge
PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


class DecodeError(ValueError):
    """A payload that cannot become an event; `reason` is a stable code for metrics and the DLQ."""

    def __init__(self, reason: str, detail: str):
        detail = _clip(detail, MAX_DETAIL)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CatalogUnavailable(Exception):
    """The schema catalog failed to answer (registry failing, answering garbage): an outage, not
    bad input. `decode` raises it, chained to the catalog's own exception, for any failure of the
    catalog but KeyError (unknown id), UnreadableSchema and OSError (which already says "outage")."""


class UnreadableSchema(Exception):
    """For catalogs to raise: the id exists, but its schema is not one this process can read (a
    Protobuf or JSON schema in a Confluent registry). Bad input, like any other foreign schema:
    `decode` rejects the record as schema_mismatch with this message."""


# What `decode` raises when the catalog cannot answer. RegistryUnavailable (registry unreachable)
# is a ConnectionError, so an OSError, and propagates as it is.
OUTAGES: tuple[type[Exception], ...] = (CatalogUnavailable, OSError)


class SchemaCatalog(Protocol):
    """writer_schema: the fastavro-parsed schema of an id; KeyError if the id is unknown,
    UnreadableSchema if it names a schema that is not Avro. Any other exception means the catalog
    could not answer (see OUTAGES)."""

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


# --- encoding ---------------------------------------------------------------------------------------

# Caches are keyed by (id(catalog), schema id) and hold the schema objects they were built from: a
# hit counts only for the very same objects, since a dead catalog's id() is reused by a new one.
_ENCODERS: dict[tuple[int, int], tuple[Any, Callable | None]] = {}


def encode(record: dict, schema_id: int | None = None, catalog: SchemaCatalog | None = None) -> bytes:
    """Encode `record` with the schema `schema_id` (default: the reader schema) in wire format."""
    catalog = catalog or default_catalog()
    schema_id = catalog.id_of_reader() if schema_id is None else schema_id
    writer = catalog.writer_schema(schema_id)
    cached = _ENCODERS.get((id(catalog), schema_id))
    if cached is None or cached[0] is not writer:
        cached = _ENCODERS[(id(catalog), schema_id)] = (writer, _compile(avro_codec.compile_encoder, writer))
    header = HEADER.pack(MAGIC_BYTE, schema_id)
    if cached[1] is not None:
        return cached[1](record, header)
    out = io.BytesIO()
    out.write(header)
    fastavro.schemaless_writer(out, writer, record)
    return out.getvalue()


def _compile(compile_codec: Callable, schema: Any) -> Callable | None:
    """avro_codec's encoder or decoder for `schema`; None if it does not support it (fastavro then)."""
    try:
        return compile_codec(schema)
    except avro_codec.Unsupported:
        return None


# --- decoding ---------------------------------------------------------------------------------------

def decode(payload: bytes, catalog: SchemaCatalog | None = None) -> dict:
    """Decode a wire-format payload into a dict shaped by the reader schema, or raise DecodeError
    (bad input) or one of OUTAGES (the catalog cannot answer)."""
    catalog = catalog or default_catalog()
    schema_id = _schema_id(payload)
    writer = _writer_schema(catalog, schema_id)
    try:
        reader = catalog.reader_schema()
    except OUTAGES:
        raise
    except Exception as exc:  # noqa: BLE001 - the catalog's failure, whatever its type
        raise _unavailable(exc, "the reader schema") from exc
    return _plan(catalog, schema_id, writer, reader)(payload)


def decode_as_written(payload: bytes, catalog: SchemaCatalog) -> dict:
    """Decode a wire-format payload with its own writer schema (no reader schema): for tools and
    tests reading a topic whose schema another component registered (events.clean is written by
    Flink's avro-confluent format). Only record schemas; raises like `decode`."""
    schema_id = _schema_id(payload)
    return _plan(catalog, schema_id, _writer_schema(catalog, schema_id), None)(payload)


def _schema_id(payload: bytes | None) -> int:
    if not payload:
        raise DecodeError("empty_payload", "the record has no value")
    if len(payload) < HEADER.size:
        raise DecodeError("bad_header", f"{len(payload)} bytes is shorter than the 5-byte header")
    magic, schema_id = HEADER.unpack_from(payload)
    if magic != MAGIC_BYTE:
        raise DecodeError("bad_magic_byte", f"first byte is 0x{payload[0]:02x}, expected 0x00")
    return schema_id


def _writer_schema(catalog: SchemaCatalog, schema_id: int) -> Any:
    try:
        return catalog.writer_schema(schema_id)
    except KeyError:
        raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not known") from None
    except UnreadableSchema as exc:
        raise DecodeError("schema_mismatch", f"schema id {schema_id}: {_first_line(exc)}") from None
    except OUTAGES:
        raise
    except Exception as exc:  # noqa: BLE001 - the catalog's failure, whatever its type
        raise _unavailable(exc, f"schema id {schema_id}") from exc


def _unavailable(exc: Exception, asked_for: str) -> CatalogUnavailable:
    return CatalogUnavailable(f"the schema catalog failed on {asked_for}: {type(exc).__name__}: {_first_line(exc)}")


_PLANS: dict[tuple[int, int, bool], tuple[Any, Any, Callable[[bytes], dict]]] = {}


def _plan(catalog: SchemaCatalog, schema_id: int, writer: Any, reader: Any) -> Callable[[bytes], dict]:
    """How records of `writer` are read as `reader` (None: as written), worked out once per id."""
    key = (id(catalog), schema_id, reader is None)
    cached = _PLANS.get(key)
    if cached is None or cached[0] is not writer or cached[1] is not reader:
        cached = _PLANS[key] = (writer, reader, _make_plan(schema_id, writer, reader))
    return cached[2]


def _make_plan(schema_id: int, writer: Any, reader: Any) -> Callable[[bytes], dict]:
    # A schema is readable or not whatever its records hold: decided here, from the schemas alone.
    same = reader is not None and writer is reader
    problem = None if same else _unreadable(schema_id, writer, reader)
    if problem is not None:
        def reject(payload: bytes) -> dict:
            raise DecodeError("schema_mismatch", problem)
        return reject

    # The compiled decoder serves the reader's own schema and the reader minus fields with defaults
    # (v1 read as v2: decode as written, add the defaults); fastavro resolves anything else.
    added = {} if same else (_extension_defaults(writer, reader) if reader is not None else None)
    fast = _compile(avro_codec.compile_decoder, writer) if added is not None else None
    if fast is not None:
        # The compiled decoder reads any varint of up to 10 bytes, also into an int or long field:
        # a value no int or long can hold must not pass (as a BIGINT it would fail the job downstream).
        bounded = [(f["name"], _INT_BITS[_plain(t)]) for f in writer["fields"]
                   for t in (f["type"] if isinstance(f["type"], list) else [f["type"]]) if _plain(t) in _INT_BITS]

        def read_compiled(payload: bytes) -> dict:
            try:
                record = fast(payload, HEADER.size)
            except Exception as exc:  # noqa: BLE001 - corrupt bytes raise several types
                raise _corrupt(exc) from None
            for name, limit in bounded:
                value = record[name]
                if value is not None and not -limit <= value < limit:
                    raise DecodeError("avro_decode_error", f"{name}: {_clip(str(value), 30)} is out of range")
            if added:
                record.update(added)
            return record
        return read_compiled

    resolve_to = None if same else reader

    def read_resolved(payload: bytes) -> dict:
        body = io.BytesIO(payload)
        body.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(body, writer, resolve_to)
        except SchemaResolutionError as exc:  # not expected after _unreadable; still not a crash
            raise DecodeError("schema_mismatch", f"schema id {schema_id}: {_first_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types on corrupt bytes
            raise _corrupt(exc) from None
        if body.tell() != len(payload):
            raise DecodeError("avro_decode_error", f"{len(payload) - body.tell()} trailing bytes after the record")
        return record
    return read_resolved


_INT_BITS = {"int": 2**31, "long": 2**63}  # values must lie in [-limit, limit)


def _corrupt(exc: Exception) -> DecodeError:
    return DecodeError("avro_decode_error", f"{type(exc).__name__}: {_first_line(exc)}")


def _unreadable(schema_id: int, writer: Any, reader: Any) -> str | None:
    """Why records written with `writer` can never be read as `reader` (None: as written), or None.

    >>> reader = fastavro.parse_schema(load_schema("event-v2.avsc"))
    >>> _unreadable(7, "string", reader)
    'schema id 7 is a string schema, not an event record'
    >>> _unreadable(9, fastavro.parse_schema({"type": "record", "name": "com.x.Other", "fields": []}), reader)
    'schema id 9 is the record com.x.Other, not the event record dev.vigil.events.Event'
    """
    what = f"schema id {schema_id} is {_described(writer)}"
    if not (isinstance(writer, dict) and writer.get("type") == "record"):
        return f"{what}, not {'a' if reader is None else 'an event'} record"
    fields = writer.get("fields")
    if not (isinstance(fields, list) and all(isinstance(f, dict) and isinstance(f.get("name"), str) and "type" in f
                                             for f in fields)):
        return f"{what}, which has no valid field list"
    if reader is not None and _short_name(writer.get("name")) != _short_name(reader["name"]):
        # Avro resolves records by unqualified name: dev.vigil.events.Event reads other.Event.
        return f"{what}, not the event record {reader['name']}"
    hazard = _hazard(writer)
    if hazard is not None:
        return f"{what}, which {hazard}"
    return None if reader is None else _mismatched_fields(schema_id, fields, reader)


def _mismatched_fields(schema_id: int, fields: list[dict], reader: dict) -> str | None:
    written = {f["name"]: f["type"] for f in fields}
    wrong = [f"{f['name']} (written as {_type_name(written[f['name']])}, read as {_type_name(f['type'])})"
             for f in reader["fields"] if f["name"] in written and not _resolves(written[f["name"]], f["type"])]
    lacking = [f["name"] for f in reader["fields"] if f["name"] not in written and "default" not in f]
    if not wrong and not lacking:
        return None
    detail = f"schema id {schema_id} cannot be read as the event schema; fields with other types: "
    detail += ", ".join(wrong) or "none"
    if lacking:
        detail += "; fields it lacks (no default): " + ", ".join(lacking)
    return detail


# Avro's promotions that give the Python type the reader's field has (int read as double: a float).
_PROMOTIONS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
               ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string")}


def _resolves(written: Any, read: Any) -> bool:
    """Whether every value of the written field type is one of the read type, as Avro resolves it
    and with the Python type validation expects: each branch the writer can use must be a branch of
    the reader (logical type, precision and scale included: fastavro does not apply the reader's
    logical type to plain bytes) or one of Avro's promotions.

    >>> _resolves("string", ["null", "string"]), _resolves(["null", "int"], ["null", "double"])
    (True, True)
    >>> _resolves(["null", "int", "string"], ["null", "string"])
    False
    >>> _resolves("bytes", {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4})
    False
    """
    readable = {_plain(t) for t in (read if isinstance(read, list) else [read])}
    return all(_plain(t) in readable or any((_plain(t), r) in _PROMOTIONS for r in readable)
               for t in (written if isinstance(written, list) else [written]))


def _plain(avro_type: Any) -> str:
    """A type reduced to what resolution depends on ({"type": "string", "avro.java.string": ...} is "string")."""
    if isinstance(avro_type, dict) and avro_type.get("type") in PRIMITIVES:
        if "logicalType" not in avro_type:
            return avro_type["type"]
        avro_type = {k: avro_type.get(k) for k in ("type", "logicalType", "precision", "scale")}
    return avro_type if isinstance(avro_type, str) else json.dumps(avro_type, sort_keys=True, default=str)


def _hazard(schema: Any) -> str | None:
    """What makes records of `schema` unsafe to hand to fastavro, whatever the bytes: it recurses in
    C once per nesting level (a recursive schema and a few KB nested deep kill the process), and it
    reads an array of items that take no bytes for as many items as the count claims (six bytes
    claim billions). Schemas are fastavro-parsed: references to named types are full names."""
    named: dict[str, dict] = {}
    stack: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]  # (type, names of the records around it)
    while stack:
        node, around = stack.pop()
        if isinstance(node, str):
            if node in around:
                return f"nests the record {_clip(node, 80)} in itself (unbounded depth)"
        elif isinstance(node, list):
            stack.extend((t, around) for t in reversed(node))
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                named[str(node.get("name"))] = node
            if kind in ("record", "error"):
                inside = around + (str(node.get("name")),)
                stack.extend((f.get("type"), inside) for f in reversed(node.get("fields") or []) if isinstance(f, dict))
            elif kind == "array":
                if _takes_no_bytes(node.get("items"), named, set()):
                    return "has an array of items that take no bytes (a few bytes can claim billions of them)"
                stack.append((node.get("items"), around))
            elif kind == "map":
                stack.append((node.get("values"), around))
            elif isinstance(kind, (dict, list)):
                stack.append((kind, around))
    return None


def _takes_no_bytes(avro_type: Any, named: dict[str, dict], seen: set[str]) -> bool:
    if isinstance(avro_type, str):
        if avro_type == "null":
            return True
        if avro_type in seen or avro_type not in named:
            return False
        seen.add(avro_type)
        avro_type = named[avro_type]
    if not isinstance(avro_type, dict):
        return False
    kind = avro_type.get("type")
    if kind in ("record", "error"):
        return all(_takes_no_bytes(f.get("type"), named, seen) for f in avro_type.get("fields") or []
                   if isinstance(f, dict))
    if kind == "fixed":
        return avro_type.get("size") == 0
    return kind == "null"


def _extension_defaults(writer: Any, reader: Any) -> dict | None:
    """The reader's extra fields with their defaults, when the reader is the writer plus fields
    with defaults (the usual evolution step, v1 read as v2); else None.

    In that case Avro resolution means: decode as written, then add the defaults. So records of an
    older version take the compiled decoder too instead of fastavro's generic resolver.
    """
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


# --- words for details ------------------------------------------------------------------------------

def _described(schema: Any) -> str:
    """What a writer schema is, in a few words.

    >>> _described("int"), _described(["null", "string"]), _described({"type": "enum", "name": "a.Colour"})
    ('an int schema', 'a union schema (null|string)', 'the enum a.Colour')
    """
    if isinstance(schema, str):
        return _a(f"{schema} schema") if schema in PRIMITIVES else f"the type {_clip(schema, 120)}"
    if isinstance(schema, list):
        return f"a union schema ({_clip('|'.join(_type_name(t) for t in schema), 120)})"
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            return f"the {kind} {_clip(str(schema.get('name')), 120)}"
        if isinstance(kind, str) and "logicalType" in schema:
            return _a(f"{_clip(kind, 40)} ({_clip(str(schema['logicalType']), 40)}) schema")
        if isinstance(kind, str):
            return _a(f"{_clip(kind, 40)} schema")
    return f"not an Avro schema ({type(schema).__name__})"


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return "|".join(_type_name(t) for t in avro_type if t != "null") or "null"
    if isinstance(avro_type, dict):
        for key in ("logicalType", "type"):
            if isinstance(avro_type.get(key), str):
                return _clip(avro_type[key], 60)
        return "?"
    return _clip(str(avro_type), 60)


def _a(text: str) -> str:
    return ("an " if text[:1] in "aeiou" else "a ") + text


def _short_name(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: Exception) -> str:
    return _clip((str(exc).splitlines() or [""])[0], 300)
