"""Joining delayed chargeback labels to the model vectors their payments were scored with.

The risk scorer (udfs/fraud_scorer_operator.py) keeps, per tenant, the model vector of every
payment until its label arrives or `horizon_ms` of event time passes; a label then teaches the
supervised model with exactly the vector the payment was scored with. The two stores are Flink
MapStates in the job and plain mappings in tests: anything with get/put/remove. No pyflink here.

>>> join = LabelJoin(MemoryStore(), MemoryStore(), horizon_ms=1000)
>>> join.keep({"e1": {"amount_usd": 0.5}}, event_ms={"e1": 10})
[1010]
>>> vectors, joined, unmatched = join.take([{"kind": "label", "event_id": "e1"}, {"kind": "label", "event_id": "e9"}])
>>> vectors, joined, unmatched
({'e1': {'amount_usd': 0.5}}, 1, 1)
>>> join.expire(1010), join.vectors   # due at 1010 (already taken by its label)
(1, {})
"""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    def get(self, key): ...
    def put(self, key, value) -> None: ...
    def remove(self, key) -> None: ...


class MemoryStore(dict):
    """A Store over a dict (tests, doctests)."""

    def put(self, key, value) -> None:
        self[key] = value

    def remove(self, key) -> None:
        self.pop(key, None)


class LabelJoin:
    def __init__(self, vectors: Store, expiry: Store, horizon_ms: int):
        self.vectors = vectors      # payment event_id -> model vector
        self.expiry = expiry        # event time -> event_ids whose vectors expire then
        self.horizon_ms = horizon_ms

    def take(self, items: list[dict]) -> tuple[dict, int, int]:
        """The stored vectors of the labels among `items`, removed from the store (a label is
        learned once); with the counts of labels joined and of labels with no vector (unknown
        payment, or one older than the horizon)."""
        vectors, unmatched = {}, 0
        for item in items:
            if item["kind"] != "label":
                continue
            vector = self.vectors.get(item["event_id"])
            if vector is None:
                unmatched += 1
            else:
                vectors[item["event_id"]] = vector
                self.vectors.remove(item["event_id"])
        return vectors, len(vectors), unmatched

    def keep(self, vectors: dict, event_ms: dict) -> list[int]:
        """Store the vectors of newly scored payments until their label or the horizon; returns
        the event times at which the caller must fire expire()."""
        due_times = []
        for event_id, vector in vectors.items():
            self.vectors.put(event_id, vector)
            expire_at = event_ms[event_id] + self.horizon_ms
            due = self.expiry.get(expire_at) or []
            due.append(event_id)
            self.expiry.put(expire_at, due)
            due_times.append(expire_at)
        return due_times

    def expire(self, timestamp: int) -> int:
        """Drop the vectors whose horizon ends at `timestamp` (already labelled ones are gone:
        removing them again costs no read); how many were due."""
        due = self.expiry.get(timestamp)
        if due is None:
            return 0
        self.expiry.remove(timestamp)
        for event_id in due:
            self.vectors.remove(event_id)
        return len(due)
