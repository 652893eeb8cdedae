"""Benchmark: the ingest job's Python work per record, in one process (no JVM).

Prints microseconds per record (the fastest of --repeat passes) for the same generated records (2 % bad input, 30 % schema v2):
  decode     vigil.serde.decode (Avro, offline catalog)
  validate   udfs.validation.validate (decode and every rule)
  udf eval   udfs.ingest_udfs.ValidateEvent.eval: validate, the result row, metric counting
             (with Python stand-ins for Flink's counters: in thread mode each inc is a JVM call)
Runs the code of --tree (default: this working tree), so an earlier revision is measured with
    git archive REV | tar -x -C /tmp/rev && .venv/bin/python bench/ingest_validation.py --tree /tmp/rev

    .venv/bin/python bench/ingest_validation.py [--events 50000] [--repeat 5] [--tree DIR]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path


class _Counter:
    def inc(self, n: int = 1) -> None:
        pass


class _MetricGroup:
    def add_group(self, *_):
        return self

    def counter(self, _name):
        return _Counter()


class _FunctionContext:
    def get_metric_group(self):
        return _MetricGroup()


def _per_record_us(function, records, repeat: int) -> float:
    """The fastest of `repeat` passes (the machine is shared: slower passes measure the others)."""
    for key, value in records[:1000]:  # warm the caches (schemas, compiled decoders)
        function(key, value)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for key, value in records:
            function(key, value)
        best = min(best, time.perf_counter() - started)
    return best / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5, help="passes; the fastest is printed")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    from udfs.ingest_udfs import ValidateEvent
    from udfs.validation import ValidationRules, validate
    from vigil import serde
    from vigil.generator.stream import EventStream, StreamSettings

    now_ms = int(time.time() * 1000)
    stream = EventStream(StreamSettings(seed=5, start_ms=now_ms - 600_000, rate=2000.0, bad_fraction=0.02,
                                        v2_fraction=0.3))
    records = [(r.key, r.value) for r in itertools.islice(stream.records(), args.events)]
    catalog, rules = serde.default_catalog(), ValidationRules()

    def decode(_key, value):
        try:
            serde.decode(value or b"", catalog)
        except serde.DecodeError:
            pass

    udf = ValidateEvent(rules, None, "event-v2.avsc")
    udf.open(_FunctionContext())
    print(f"{args.events:,} generated records (2 % bad), code of {args.tree}, Python {sys.version.split()[0]}")
    print(f"decode     {_per_record_us(decode, records, args.repeat):5.1f} us/record")
    print(f"validate   {_per_record_us(lambda k, v: validate(v, k, now_ms, rules, catalog), records, args.repeat):5.1f} us/record")
    print(f"udf eval   {_per_record_us(lambda k, v: udf.eval(v, k), records, args.repeat):5.1f} us/record")


if __name__ == "__main__":
    main()
