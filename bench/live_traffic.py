"""Live traffic for the fraud benchmarks: the generator's default mix, encoded once as
`events.clean` records into a file, then replayed into Kafka with event time moved to now.

Building events in Python costs ~70 us each (docs/benchmarks.md, generator), more than the
fraud job may spend: so the traffic is generated ahead, in parallel processes (one seed each),
and cached by its parameters. At replay each record's event time is rewritten in its bytes
(`shift_event_time`: the Avro long after the event id), so the same file serves any start time.

File format, per record: little-endian (offset_ms int64, key length uint16, value length uint32),
key, value; offsets are event-time milliseconds from the traffic's start, non-decreasing.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import struct
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vigil import serde  # noqa: E402
from vigil.generator.stream import EventStream, StreamSettings  # noqa: E402

HEADER = struct.Struct("<qHI")
CLEAN_SCHEMA = serde.load_schema("clean-event.avsc")
_PLACEHOLDER_ID = 0  # replaced by the registry's id at replay


class CleanWriter:
    """The generator's event writer, writing the events.clean schema (what ingest would write)."""

    def event(self, event: dict) -> bytes:
        return encode_clean({**event, "source_partition": None, "source_offset": None})

    def foreign(self, record: dict) -> bytes:  # bad input is never asked for (bad_fraction 0)
        raise AssertionError("the live traffic has no bad input")


_ENCODE = None


def encode_clean(record: dict) -> bytes:
    """Wire format with schema id 0 (the id is set at replay)."""
    global _ENCODE
    if _ENCODE is None:
        from vigil import avro_codec
        _ENCODE = avro_codec.compile_encoder(CLEAN_SCHEMA)
    return _ENCODE(record, b"\x00" + _PLACEHOLDER_ID.to_bytes(4, "big"))


def _generate_part(path: str, seed: int, rate: float, seconds: float, fraud_fraction: float) -> int:
    stream = EventStream(StreamSettings(seed=seed, start_ms=0, rate=rate, fraud_fraction=fraud_fraction),
                         writer=CleanWriter())
    n, end_ms = 0, int(seconds * 1000)
    with open(path + ".tmp", "wb") as out:
        for record in stream.records():
            if record.timestamp_ms >= end_ms:
                break
            key = record.key or b""
            out.write(HEADER.pack(record.timestamp_ms, len(key), len(record.value)))
            out.write(key)
            out.write(record.value)
            n += 1
    os.replace(path + ".tmp", path)
    return n


def traffic_files(folder: Path, rate: float, seconds: float, processes: int = 2, seed: int = 7,
                  fraud_fraction: float = 0.02, log=print) -> list[Path]:
    """`seconds` of traffic at `rate` events/s, in `processes` files (cached by parameters)."""
    tag = hashlib.sha256(f"{rate}/{seconds}/{processes}/{seed}/{fraud_fraction}/v1".encode()).hexdigest()[:10]
    paths = [folder / f"traffic-{tag}-{i}.bin" for i in range(processes)]
    missing = [(i, p) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        log(f"generating {rate * seconds:,.0f} events ({seconds:.0f} s at {rate:,.0f}/s) in {processes} "
            f"processes into {folder} (cached)")
        started = time.monotonic()
        with ProcessPoolExecutor(processes) as pool:
            counts = list(pool.map(_generate_part, [str(p) for _, p in missing],
                                   [seed + i for i, _ in missing], [rate / processes] * len(missing),
                                   [seconds] * len(missing), [fraud_fraction] * len(missing)))
        log(f"  {sum(counts):,} events in {time.monotonic() - started:.0f} s")
    return paths


def read_records(paths: list[Path]) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset_ms, key, value) of all files, merged in event-time order."""
    def one(path: Path):
        with open(path, "rb", buffering=1 << 20) as f:
            while True:
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    return
                offset, key_len, value_len = HEADER.unpack(head)
                yield offset, f.read(key_len), f.read(value_len)
    return heapq.merge(*(one(p) for p in paths), key=lambda r: r[0])


def _varint(data: bytes, at: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[at]
        result |= (b & 0x7F) << shift
        at += 1
        if not b & 0x80:
            return result, at
        shift += 7


def _write_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def shift_event_time(value: bytes, schema_id: int, event_time_ms: int) -> bytes:
    """The record with its schema id and event time replaced. Layout of events.clean: magic byte,
    schema id, then event_id ["null", "string"] and event_time ["null", long] (both set here).

    >>> import fastavro, io
    >>> v = shift_event_time(encode_clean({"event_id": "e1", "event_time": 5, "tenant_id": "t"}), 7, 1_790_000_000_123)
    >>> v[4], fastavro.schemaless_reader(io.BytesIO(v[5:]), CLEAN_SCHEMA)["event_time"].timestamp()
    (7, 1790000000.123)
    """
    at = 5
    _, at = _varint(value, at)                 # event_id's union branch
    length, at = _varint(value, at)
    at += (length >> 1) ^ -(length & 1)        # zig-zag string length
    _, at = _varint(value, at)                 # event_time's union branch
    time_start = at
    _, at = _varint(value, at)
    zigzag = (event_time_ms << 1) ^ (event_time_ms >> 63)
    return b"\x00" + schema_id.to_bytes(4, "big") + value[5:time_start] + _write_varint(zigzag) + value[at:]


def replay(bootstrap: str, topic: str, records: Iterator[tuple[int, bytes, bytes]], schema_id: int,
           first_offset_ms: int, until_offset_ms: int, start_wall_ms: int, paced: bool) -> tuple[int, int]:
    """Write records with offsets in [first, until) into `topic`, event time = start_wall_ms +
    (offset - first); paced: each when the wall clock reaches its event time. Returns (records
    written, the first offset not written)."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "acks": "all", "compression.type": "lz4",
                         "queue.buffering.max.messages": 1_000_000})
    sent, next_offset = 0, until_offset_ms
    for offset, key, value in records:
        if offset < first_offset_ms:
            continue
        if offset >= until_offset_ms:
            next_offset = offset
            break
        event_ms = start_wall_ms + offset - first_offset_ms
        if paced:
            wait = event_ms / 1000 - time.time()
            if wait > 0.001:
                producer.poll(0)
                time.sleep(wait)
        while True:
            try:
                producer.produce(topic, key=key, value=shift_event_time(value, schema_id, event_ms))
                break
            except BufferError:
                producer.poll(0.01)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return sent, next_offset
