"""Schema compatibility modes, as Confluent Schema Registry defines them, checked with Apache
Avro's ReaderWriterCompatibilityChecker (no hand-written resolution rules).

BACKWARD: the new schema can read data written with the latest registered one.
FORWARD:  the latest registered schema can read data written with the new one.
FULL:     both. The *_TRANSITIVE variants check every registered version, not only the latest.
NONE:     no check.

>>> v1 = '{"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}]}'
>>> v2 = '{"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"},'\\
...      ' {"name": "b", "type": "int"}]}'
>>> incompatibilities(v2, [v1], "BACKWARD")
["reader field 'b' (/fields/1) has no default value, so data written without it cannot be read"]
>>> incompatibilities(v2, [v1], "FORWARD")
[]
"""

from __future__ import annotations

import json

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

MODES = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
         "FULL_TRANSITIVE", "NONE")
DEFAULT_MODE = "BACKWARD"


class InvalidSchema(ValueError):
    """Not a valid Avro schema (Confluent error 42201)."""


def parse(schema_text: str) -> avro.schema.Schema:
    try:
        return avro.schema.parse(schema_text)
    except Exception as exc:  # noqa: BLE001 - the avro library raises several types
        raise InvalidSchema(f"Invalid schema: {exc}") from None


def incompatibilities(new: str, registered: list[str], mode: str) -> list[str]:
    """Why `new` may not follow `registered` (oldest first) under `mode`; empty when it may."""
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}")
    if mode == "NONE" or not registered:
        return []
    candidates = registered if mode.endswith("_TRANSITIVE") else registered[-1:]
    new_schema = parse(new)
    problems: list[str] = []
    for old_text in reversed(candidates):
        old_schema = parse(old_text)
        if mode.startswith(("BACKWARD", "FULL")):
            problems += _check(reader=new_schema, writer=old_schema, reader_json=new)
        if mode.startswith(("FORWARD", "FULL")):
            problems += _check(reader=old_schema, writer=new_schema, reader_json=old_text)
    return list(dict.fromkeys(problems))  # same problem against several versions: say it once


def _check(reader, writer, reader_json: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = [k.value for k in result.incompatibilities]
    locations = sorted(result.locations)
    if len(kinds) == 1 and len(locations) == 1:  # one problem: kind, place and message pair up
        return [_explain(kinds[0], next(iter(result.messages)), locations[0], reader_json)]
    # Avro merges several problems into sets that do not pair up: name every field at fault.
    fields = ", ".join(_where(loc, reader_json) for loc in locations)
    return [f"{', '.join(sorted(set(kinds)))} at {fields}: {'; '.join(sorted(result.messages))}"]


def _where(location: str, reader_json: str) -> str:
    field = _field_at(location, reader_json)
    return f"field '{field}' ({location})" if field else location


def _explain(kind: str, message: str, location: str, reader_json: str) -> str:
    if kind == "reader_field_missing_default_value":
        return (f"reader {_where(location, reader_json)} has no default value, so data written "
                "without it cannot be read")
    return f"{kind.replace('_', ' ')} at {_where(location, reader_json)}: {message}"


def _field_at(location: str, schema_json: str) -> str | None:
    """'/fields/1/type' -> the name of field 1 of the record (top level)."""
    parts = location.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "fields" and parts[1].isdigit():
        try:
            return json.loads(schema_json)["fields"][int(parts[1])]["name"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
    return None
