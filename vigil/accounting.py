"""Exactly-once accounting of the pipeline's committed output, for failure drills and tests.

The ingest job writes the raw position (source_partition, source_offset) of every input into its
clean or dead-letter record, so each raw record can be traced to its outcome; the fraud job's
scores and alerts carry the decided event's id. The readers below collect those outcomes from
the committed (read_committed) output; the checks return readable problems instead of raising,
so that a drill can print all of them at once.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from vigil import kafka_io
from vigil.registry.catalog import value_decoder

Position = tuple[int, int]


def read_outcomes(bootstrap: str, registry: str, names: dict, expected_total: int,
                  max_wait_s: float = 120) -> dict:
    """(partition, offset) of every raw input -> list of outcomes ("clean" or a DLQ reason),
    plus the clean event ids and events, read with read_committed; waits until
    `expected_total` outcomes arrived or `max_wait_s` passed."""
    outcomes: dict[Position, list[str]] = {}
    clean_ids: list[str] = []
    clean: dict[str, dict] = {}  # event_id -> the event as written to events.clean
    deadline = time.monotonic() + max_wait_s
    clean_start: dict = {}
    dlq_start: dict = {}
    decode_clean = value_decoder(registry)  # events.clean is avro-confluent
    while True:
        for message in kafka_io.read(bootstrap, names["clean"], clean_start, idle_timeout_s=2):
            value = decode_clean(message.value())
            outcomes.setdefault((value["source_partition"], value["source_offset"]), []).append("clean")
            clean_ids.append(value["event_id"])
            clean[value["event_id"]] = value
            clean_start[message.partition()] = message.offset() + 1
        for message in kafka_io.read(bootstrap, names["dlq"], dlq_start, idle_timeout_s=2):
            value = json.loads(message.value())
            outcomes.setdefault((value["source_partition"], value["source_offset"]), []).append(value["reason"])
            dlq_start[message.partition()] = message.offset() + 1
        if sum(map(len, outcomes.values())) >= expected_total or time.monotonic() > deadline:
            return {"outcomes": outcomes, "clean_ids": clean_ids, "clean": clean}
        time.sleep(1)


def each_input_once(positions: set[Position], outcomes: dict[Position, list[str]],
                    clean_ids: list[str]) -> list[str]:
    """Problems with "every input in clean or DLQ exactly once" (empty: none).

    >>> each_input_once({(0, 0), (0, 1)}, {(0, 0): ["clean"], (0, 1): ["bad_schema"]}, ["e1"])
    []
    >>> each_input_once({(0, 0), (0, 1)}, {(0, 0): ["clean", "clean"], (0, 2): ["clean"]}, ["e1", "e1"])
    ['1 inputs lost, e.g. [(0, 1)]', '1 outputs with no input, e.g. [(0, 2)]', '1 inputs written twice, e.g. [((0, 0), 2)]', '1 event ids reached the clean topic twice']
    """
    problems = []
    missing = positions - outcomes.keys()
    extra = outcomes.keys() - positions
    repeated = {k: len(v) for k, v in outcomes.items() if len(v) > 1}
    if missing:
        problems.append(f"{len(missing)} inputs lost, e.g. {sorted(missing)[:5]}")
    if extra:
        problems.append(f"{len(extra)} outputs with no input, e.g. {sorted(extra)[:5]}")
    if repeated:
        problems.append(f"{len(repeated)} inputs written twice, e.g. {sorted(repeated.items())[:5]}")
    twice = [e for e, n in Counter(clean_ids).items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} event ids reached the clean topic twice")
    return problems


def wrong_verdicts(manifest: list[dict], outcomes: dict[Position, list[str]]) -> Counter:
    """(kind, expected, got) of inputs whose first outcome is not the one the generator expected;
    an event expected late may also pass as clean (the watermark may not have passed it yet)."""
    wrong: Counter = Counter()
    for m in manifest:
        got = outcomes.get((m["partition"], m["offset"]))
        if not got:
            continue
        allowed = {"late_event", "clean"} if m["expected"] == "late_event" else {m["expected"]}
        if got[0] not in allowed:
            wrong[(m["kind"], m["expected"], got[0])] += 1
    return wrong


def each_payment_scored_once(payment_ids: set[str], scored_ids: list[str]) -> list[str]:
    """Every payment decided exactly once in the committed scores.

    >>> each_payment_scored_once({"p1", "p2"}, ["p1", "p2", "p3"])
    []
    >>> each_payment_scored_once({"p1", "p2"}, ["p1", "p1"])
    ["1 payments never scored, e.g. ['p2']", "1 payments scored twice, e.g. ['p1']"]
    """
    problems = []
    counts = Counter(scored_ids)
    unscored = payment_ids - counts.keys()
    twice = sorted(e for e, n in counts.items() if n > 1)
    if unscored:
        problems.append(f"{len(unscored)} payments never scored, e.g. {sorted(unscored)[:5]}")
    if twice:
        problems.append(f"{len(twice)} payments scored twice, e.g. {twice[:5]}")
    return problems


def unique_ids(records: list[dict], field: str, what: str) -> list[str]:
    """>>> unique_ids([{"a": 1}, {"a": 1}, {"a": 2}], "a", "alert")
    ['1 alert ids written more than once, e.g. [1]']
    """
    twice = sorted(k for k, n in Counter(r[field] for r in records).items() if n > 1)
    return [f"{len(twice)} {what} ids written more than once, e.g. {twice[:5]}"] if twice else []
