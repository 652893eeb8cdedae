"""Bounded label values for per-tenant metrics.

Vigil serves 10,000+ merchants across many tenants. A Prometheus series per tenant, per reason,
per subtask would explode the time-series count, so each operator instance gives its own series to
the first `capacity` tenants it sees and folds the rest into "_other". The cap is per subtask:
series <= subtasks x (capacity + 1) x reasons. Exact per-tenant counts live in the data (the DLQ
and clean topics, and the analytics job), not in metrics.

>>> labels = BoundedLabels(capacity=2)
>>> [labels.label(t) for t in ["a", "b", "a", "c", None]]
['a', 'b', 'a', '_other', '_unknown']
"""

from __future__ import annotations

OTHER = "_other"
UNKNOWN = "_unknown"


class BoundedLabels:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._seen: set[str] = set()

    def label(self, value: str | None) -> str:
        if value is None:
            return UNKNOWN
        if value in self._seen:
            return value
        if len(self._seen) < self.capacity:
            self._seen.add(value)
            return value
        return OTHER
