"""A fast Avro binary encoder compiled from a schema, for the generator's hot path.

fastavro resolves every union branch per value (~16 us per event here); producing 50k events/s
from one Python process needs a few microseconds. This compiles a record schema of primitives,
nullable unions, `decimal` (bytes) and `timestamp-millis` into a list of field writers once.
Anything else raises `Unsupported` and callers fall back to fastavro. Unit tests check that its
bytes equal fastavro's for the event schema. Decoding always uses fastavro.

>>> encoder = compile_encoder({"type": "record", "name": "R", "fields": [
...     {"name": "a", "type": "long"}, {"name": "b", "type": ["null", "string"]}]})
>>> encoder({"a": -1, "b": "hi"})
b'\\x01\\x02\\x04hi'
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any, Callable

_DOUBLE = struct.Struct("<d").pack
_FLOAT = struct.Struct("<f").pack


class Unsupported(ValueError):
    pass


def _long(out: bytearray, n: int) -> None:
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:            # most lengths and small ints: one byte
        out.append(n)
        return
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _string(out: bytearray, value: str) -> None:
    data = value.encode()
    if len(data) < 64:
        out.append(len(data) << 1)
    else:
        _long(out, len(data))
    out += data


def _bytes(out: bytearray, value: bytes) -> None:
    _long(out, len(value))
    out += value


def _decimal_writer(scale: int) -> Callable[[bytearray, Any], None]:
    def write(out: bytearray, value: Decimal) -> None:
        unscaled = int(value.scaleb(scale))
        if unscaled != value.scaleb(scale):
            raise ValueError(f"{value} has more than {scale} decimals")
        size = (unscaled + (unscaled < 0)).bit_length() // 8 + 1
        _bytes(out, unscaled.to_bytes(size, "big", signed=True))
    return write


def _writer_for(avro_type: Any) -> Callable[[bytearray, Any], None]:
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        base = avro_type["type"]
        if logical == "decimal" and base == "bytes":
            return _decimal_writer(avro_type.get("scale", 0))
        if logical == "timestamp-millis" and base == "long":
            return _long
        if logical is None and isinstance(base, str):
            return _writer_for(base)
        raise Unsupported(f"type {avro_type}")
    simple = {
        "long": _long, "int": _long, "string": _string, "bytes": _bytes,
        "double": lambda out, v: out.extend(_DOUBLE(v)), "float": lambda out, v: out.extend(_FLOAT(v)),
        "boolean": lambda out, v: out.append(1 if v else 0),
    }
    if isinstance(avro_type, str) and avro_type in simple:
        return simple[avro_type]
    raise Unsupported(f"type {avro_type}")


def _field_writer(field: dict) -> Callable[[bytearray, dict], None]:
    name, avro_type = field["name"], field["type"]
    has_default, default = "default" in field, field.get("default")
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or "null" not in avro_type:
            raise Unsupported(f"union {avro_type}")
        null_index = avro_type.index("null")
        branch = avro_type[1 - null_index]
        write = _writer_for(branch)
        null_tag, value_tag = bytes([null_index * 2]), bytes([(1 - null_index) * 2])

        if branch == "string":  # the most common field type: inlined, one call less per field
            def write_nullable_string(out: bytearray, record: dict) -> None:
                value = record.get(name)
                if value is None:
                    out += null_tag
                    return
                data = value.encode()
                out += value_tag
                if len(data) < 64:
                    out.append(len(data) << 1)
                else:
                    _long(out, len(data))
                out += data
            return write_nullable_string

        def write_nullable(out: bytearray, record: dict) -> None:
            value = record.get(name)
            if value is None:
                out += null_tag
            else:
                out += value_tag
                write(out, value)
        return write_nullable
    write = _writer_for(avro_type)

    def write_required(out: bytearray, record: dict) -> None:
        value = record[name] if name in record or not has_default else default
        write(out, value)
    return write_required


def compile_encoder(schema: dict) -> Callable[[dict], bytes]:
    if schema.get("type") != "record":
        raise Unsupported("only record schemas")
    writers = [_field_writer(f) for f in schema["fields"]]

    def encode(record: dict, prefix: bytes = b"") -> bytes:
        out = bytearray(prefix)
        for write in writers:
            write(out, record)
        return bytes(out)
    return encode
