"""Fast Avro binary encoding and decoding compiled from a schema, for the hot paths.

fastavro resolves every union branch per value (~16 us per event here); producing 50k events/s
from one Python process needs a few microseconds. This compiles a record schema of primitives,
nullable unions, `decimal` (bytes) and `timestamp-millis` into a list of field writers once.
Anything else raises `Unsupported` and callers fall back to fastavro. Unit tests check that its
bytes equal fastavro's for the event schema, and that decoding gives what fastavro gives.

>>> encoder = compile_encoder({"type": "record", "name": "R", "fields": [
...     {"name": "a", "type": "long"}, {"name": "b", "type": ["null", "string"]}]})
>>> encoder({"a": -1, "b": "hi"})
b'\\x01\\x02\\x04hi'
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
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


# --- decoding ---------------------------------------------------------------------------------
# The ingest job decodes every record: fastavro takes ~36 us per event here, mostly resolving
# unions. Records written with the reader's own schema (nearly all of them) take this path;
# anything else (other writer schemas, resolution) stays with fastavro.

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from
_UNPACK_FLOAT = struct.Struct("<f").unpack_from


class Truncated(ValueError):
    pass


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise ValueError("varint longer than 10 bytes")
    return (n >> 1) ^ -(n & 1), pos


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _read_long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise Truncated(f"length {size} runs past the end of the record")
    return data[pos:end], end


def _reader_for(avro_type: Any):
    if isinstance(avro_type, dict):
        logical, base = avro_type.get("logicalType"), avro_type["type"]
        if logical == "decimal" and base == "bytes":
            scale = avro_type.get("scale", 0)
            # A 60 KB "decimal" costs a third of a second to convert: hostile input. Beyond 64 bytes
            # (154 digits, far past any precision) it reads as an infinity of its sign, which
            # validation refuses as out of range without converting it.
            max_bytes = 64

            def read_decimal(data, pos):
                raw, pos = _read_bytes(data, pos)
                if len(raw) > max_bytes:
                    return Decimal("-Infinity" if raw[0] & 0x80 else "Infinity"), pos
                return Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(-scale), pos
            return read_decimal
        if logical == "timestamp-millis" and base == "long":
            def read_timestamp(data, pos):
                millis, pos = _read_long(data, pos)
                try:
                    return _EPOCH + timedelta(milliseconds=millis), pos
                except OverflowError:  # beyond year 9999 or before year 1: validation judges the number
                    return millis, pos
            return read_timestamp
        if logical is None and isinstance(base, str):
            return _reader_for(base)
        raise Unsupported(f"type {avro_type}")

    def read_string(data, pos):
        raw, pos = _read_bytes(data, pos)
        return raw.decode(), pos

    def read_double(data, pos):
        if pos + 8 > len(data):
            raise Truncated("double runs past the end of the record")
        return _UNPACK_DOUBLE(data, pos)[0], pos + 8

    def read_float(data, pos):
        if pos + 4 > len(data):
            raise Truncated("float runs past the end of the record")
        return _UNPACK_FLOAT(data, pos)[0], pos + 4

    def read_boolean(data, pos):
        return data[pos] == 1, pos + 1

    simple = {"long": _read_long, "int": _read_long, "string": read_string, "bytes": _read_bytes,
              "double": read_double, "float": read_float, "boolean": read_boolean}
    if isinstance(avro_type, str) and avro_type in simple:
        return simple[avro_type]
    raise Unsupported(f"type {avro_type}")


def compile_decoder(schema: dict) -> Callable[[bytes, int], dict]:
    """decode(data, offset) -> record, for records written with exactly this schema.

    Raises ValueError (or IndexError/UnicodeDecodeError) on corrupt input and on trailing bytes,
    like fastavro; callers map both to one reason.

    The decoder is generated as straight-line Python source, one block per field (`decoder_source`
    shows it): the common cases (one-byte union tags and lengths, strings, longs, doubles) are read
    inline, the rest through the readers above. Half the cost of a loop over per-field functions:
    the ingest job runs it on every record.

    >>> decode = compile_decoder({"type": "record", "name": "R", "fields": [
    ...     {"name": "a", "type": "long"}, {"name": "b", "type": ["null", "string"]}]})
    >>> decode(b"\\x01\\x02\\x04hi")
    {'a': -1, 'b': 'hi'}
    """
    source, names = decoder_source(schema)
    scope = {"_read_long": _read_long, "Truncated": Truncated, "_UNPACK_DOUBLE": _UNPACK_DOUBLE,
             "_EPOCH": _EPOCH, "timedelta": timedelta, "_slow_union": _slow_union, **names}
    exec(compile(source, f"<avro decoder {schema.get('name')}>", "exec"), scope)  # noqa: S102 - our own source
    return scope["decode"]


def decoder_source(schema: dict) -> tuple[str, dict[str, Any]]:
    """The generated decoder's source and the names it refers to (readers of the other types)."""
    if schema.get("type") != "record":
        raise Unsupported("only record schemas")
    names: dict[str, Any] = {}
    lines = ["def decode(data, pos=0):", "    n = len(data)"]
    results = []
    for i, field in enumerate(schema["fields"]):
        target, avro_type = f"r{i}", field["type"]
        results.append(f"{field['name']!r}: {target}")
        if isinstance(avro_type, list):
            if len(avro_type) != 2 or "null" not in avro_type:
                raise Unsupported(f"union {avro_type}")
            null_index = avro_type.index("null")
            branch_type = avro_type[1 - null_index]
            names[f"_read{i}"] = _reader_for(branch_type)  # also raises Unsupported for other types
            lines += [f"    tag = data[pos]",
                      f"    if tag == {null_index * 2}:",
                      f"        pos += 1",
                      f"        {target} = None",
                      f"    elif tag == {(1 - null_index) * 2}:",
                      f"        pos += 1"]
            lines += _inline_read(branch_type, target, f"_read{i}", "        ")
            lines += [f"    else:  # a longer varint, or a branch out of range",
                      f"        {target}, pos = _slow_union(data, pos, {null_index}, _read{i}, {field['name']!r})"]
        else:
            names[f"_read{i}"] = _reader_for(avro_type)
            lines += _inline_read(avro_type, target, f"_read{i}", "    ")
    lines += ["    if pos != n:",
              "        raise ValueError(f\"{n - pos} trailing bytes after the record\")",
              "    return {" + ", ".join(results) + "}"]
    return "\n".join(lines) + "\n", names


def _inline_read(avro_type: Any, target: str, reader: str, indent: str) -> list[str]:
    """Lines that read one value of `avro_type` at `pos` into `target` and advance `pos`."""
    plain = avro_type.get("type") if isinstance(avro_type, dict) and "logicalType" not in avro_type else avro_type
    varint = [f"{target} = data[pos]",
              f"if {target} < 0x80:",
              f"    pos += 1",
              f"    {target} = ({target} >> 1) ^ -({target} & 1)",
              f"else:",
              f"    {target}, pos = _read_long(data, pos)"]
    if plain in ("long", "int"):
        lines = varint
    elif plain == "string":
        lines = [line.replace(target, "size") for line in varint] + [
            "end = pos + size",
            "if size < 0 or end > n:",
            "    raise Truncated(f\"length {size} runs past the end of the record\")",
            f"{target} = data[pos:end].decode()",
            "pos = end"]
    elif plain == "double":
        lines = ["if pos + 8 > n:",
                 "    raise Truncated(\"double runs past the end of the record\")",
                 f"{target} = _UNPACK_DOUBLE(data, pos)[0]",
                 "pos += 8"]
    elif isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-millis" and avro_type["type"] == "long":
        lines = varint + ["try:",
                          f"    {target} = _EPOCH + timedelta(milliseconds={target})",
                          "except OverflowError:  # beyond year 9999 or before year 1: validation judges the number",
                          "    pass"]
    else:
        lines = [f"{target}, pos = {reader}(data, pos)"]
    return [indent + line for line in lines]


def _slow_union(data: bytes, pos: int, null_index: int, read, name: str):
    branch, pos = _read_long(data, pos)
    if branch == null_index:
        return None, pos
    if branch != 1 - null_index:
        raise ValueError(f"union branch {branch} out of range for {name}")
    return read(data, pos)
