"""Benchmark: the cost of schema evolution in the ingest decoder, per record, in one process.

Prints decodes per second and microseconds per record for the same generated events:
  v2 -> v2   written and read with event schema v2 (compiled decoder)
  v1 -> v2   written with v1, read as v2 by the compiled decoder + v2's defaults (serde's path)
  v1 -> v2   the same through fastavro's generic writer->reader resolution (the path serde avoids)
and, when a registry answers (local one by default), the time to fetch a writer schema the first
time a worker sees its id (what each Python worker pays once per schema id).

    .venv/bin/python bench/schema_decode.py [--events 100000] [--registry-url URL]
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastavro  # noqa: E402

from bench.memory import percentile  # noqa: E402
from vigil import serde  # noqa: E402
from vigil.generator.stream import EventStream, StreamSettings  # noqa: E402
from vigil.registry import service  # noqa: E402


def _payloads(n: int, v2_fraction: float) -> list[bytes]:
    stream = EventStream(StreamSettings(seed=3, start_ms=1_795_000_000_000, rate=5000.0, v2_fraction=v2_fraction))
    return [r.value for r in itertools.islice(stream.records(), n)]


def _rate(label: str, decode, payloads: list[bytes]) -> None:
    started = time.perf_counter()
    for payload in payloads:
        decode(payload)
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {len(payloads) / elapsed:>10,.0f} records/s  {elapsed / len(payloads) * 1e6:6.1f} us/record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--registry-url", default=service.registry_url())
    args = parser.parse_args()
    catalog = serde.default_catalog()
    v1, v2 = catalog.writer_schema(1), catalog.reader_schema()
    v2_payloads = _payloads(args.events, 1.0)
    v1_payloads = _payloads(args.events, 0.0)
    assert all(p[4] == 2 for p in v2_payloads) and all(p[4] == 1 for p in v1_payloads)

    print(f"{args.events:,} generated events, one process, Python {sys.version.split()[0]}")
    _rate("v2 -> v2 (compiled decoder)", serde.decode, v2_payloads)
    _rate("v1 -> v2 (compiled decoder + defaults)", serde.decode, v1_payloads)
    _rate("v1 -> v2 (fastavro writer->reader resolution)",
          lambda p: fastavro.schemaless_reader(io.BytesIO(p[5:]), v1, v2), v1_payloads)

    if not service.healthy(args.registry_url):
        print(f"no registry at {args.registry_url}: first-fetch latency not measured (vigil infra up)")
        return
    from vigil.registry.catalog import RegistrySchemaCatalog
    schema_id = RegistrySchemaCatalog(args.registry_url).register("bench.schema-decode-value", serde.load_schema("event-v1.avsc"))
    fetches = []
    for _ in range(200):
        fresh = RegistrySchemaCatalog(args.registry_url)  # an empty cache, like a new worker
        started = time.perf_counter()
        fresh.writer_schema(schema_id)
        fetches.append((time.perf_counter() - started) * 1000)
    fetches.sort()
    print(f"first sight of a schema id (GET /schemas/ids/{schema_id} + parse), 200 cold caches: "
          f"p50 {percentile(fetches, 50):.2f} ms, p99 {percentile(fetches, 99):.2f} ms; then cached for the process")


if __name__ == "__main__":
    main()
