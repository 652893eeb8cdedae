"""PyFlink adapters for the ingest job: thin wrappers around udfs.validation, plus metrics.

`ValidateEvent` turns a Kafka record into a ROW (verdict + event fields) and counts validation
rejections; `CountRejection` counts the rejections Flink SQL decides later (late_event,
duplicate) as they are routed (it returns its input). Metrics:
  vigil_ingest_records{tenant}                       every record seen by validation
  vigil_ingest_rejected{reason, tenant}              every record routed to events.dlq
  vigil_internal_errors{function}                    records a bug turned into `internal_error`
Tenant labels are bounded per subtask (udfs/metric_labels.py). Both functions are guarded
(udfs/guard.py): whatever a record holds, they return a row, never an exception.

In thread mode a counter is a Java object: each `inc` is a call from Python into the JVM, which
costs about as much as validating a field. `vigil_ingest_records` (one per record) is therefore
counted in Python and added to the Java counters every `FLUSH_EVERY` records or, at the first
record after a second without a flush, and when the function closes: the series lags by at most
that while records flow (when input stops, the last second's count waits for the next record).
Rejections are rare and are counted at once.
"""

from __future__ import annotations

import time
from operator import itemgetter

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from udfs.guard import InternalErrors
from udfs.metric_labels import BoundedLabels
from udfs.validation import ValidationRules, to_millis, validate

EVENT_FIELDS = [
    ("event_id", DataTypes.STRING()), ("event_time_ms", DataTypes.BIGINT()),
    ("tenant_id", DataTypes.STRING()), ("merchant_id", DataTypes.STRING()),
    ("user_id", DataTypes.STRING()), ("session_id", DataTypes.STRING()),
    ("device_id", DataTypes.STRING()), ("ip", DataTypes.STRING()),
    ("card_fingerprint", DataTypes.STRING()), ("event_type", DataTypes.STRING()),
    ("status", DataTypes.STRING()), ("amount", DataTypes.DECIMAL(18, 4)),
    ("currency", DataTypes.STRING()), ("country", DataTypes.STRING()),
    ("latitude", DataTypes.DOUBLE()), ("longitude", DataTypes.DOUBLE()),
    ("product_id", DataTypes.STRING()), ("category", DataTypes.STRING()),
    # BIGINT, not INT: in thread mode a NULL INT result fails in the JVM (Long.intValue on null);
    # the SQL casts it back.
    ("schema_version", DataTypes.BIGINT()),
    # v2 of the event schema; null for v1 records (resolved with the fields' defaults).
    ("payment_method", DataTypes.STRING()), ("loyalty_tier", DataTypes.STRING()),
]
VERDICT_TYPE = DataTypes.ROW(
    [DataTypes.FIELD("reason", DataTypes.STRING()), DataTypes.FIELD("detail", DataTypes.STRING()),
     DataTypes.FIELD("payload_size", DataTypes.BIGINT())]
    + [DataTypes.FIELD(name, dtype) for name, dtype in EVENT_FIELDS])
_EMPTY_EVENT = [None] * len(EVENT_FIELDS)
_EVENT_TIME = 1  # position of event_time_ms in EVENT_FIELDS (the event's event_time, in ms)
# The decoded event's values in EVENT_FIELDS order, in one C call (decoded events hold every field
# of the reader schema).
_VALUES = itemgetter(*["event_time" if name == "event_time_ms" else name for name, _ in EVENT_FIELDS])
assert EVENT_FIELDS[_EVENT_TIME][0] == "event_time_ms"


def _row_values(event: dict) -> list:
    try:
        values = list(_VALUES(event))
    except KeyError:  # not shaped by the reader schema: absent fields are null
        values = [event.get("event_time" if name == "event_time_ms" else name) for name, _ in EVENT_FIELDS]
    event_time = values[_EVENT_TIME]
    if event_time is not None:
        values[_EVENT_TIME] = to_millis(event_time)
    return values


class _TenantCounters:
    """Counters keyed by (reason, tenant label), created on first use; None reason = all records.
    `inc` counts at once; `count_record` counts in Python and adds to the counters in batches."""

    FLUSH_EVERY = 1000      # records
    FLUSH_AFTER_S = 1.0

    def __init__(self, function_context: FunctionContext, capacity: int):
        self._group = function_context.get_metric_group()
        self._labels = BoundedLabels(capacity)
        self._counters = {}
        self._pending: dict[str, int] = {}
        self._pending_total = 0
        self._flush_at = time.monotonic() + self.FLUSH_AFTER_S

    def _counter(self, reason: str | None, label: str):
        counter = self._counters.get((reason, label))
        if counter is None:
            if reason is None:
                counter = self._group.add_group("tenant", label).counter("vigil_ingest_records")
            else:
                counter = (self._group.add_group("reason", reason).add_group("tenant", label)
                           .counter("vigil_ingest_rejected"))
            self._counters[(reason, label)] = counter
        return counter

    def inc(self, reason: str | None, tenant: str | None) -> None:
        self._counter(reason, self._labels.label(tenant)).inc()

    def count_record(self, tenant: str | None) -> None:
        label = self._labels.label(tenant)
        self._pending[label] = self._pending.get(label, 0) + 1
        self._pending_total += 1
        if self._pending_total >= self.FLUSH_EVERY or time.monotonic() >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        for label, count in self._pending.items():
            self._counter(None, label).inc(count)
        self._pending.clear()
        self._pending_total = 0
        self._flush_at = time.monotonic() + self.FLUSH_AFTER_S


class ValidateEvent(ScalarFunction):
    """Decodes each record through the schema registry (writer schema by the id in the record,
    resolved to the job's reader schema), then validates it."""

    def __init__(self, rules: ValidationRules, tenant_label_capacity: int, schema_registry_url: str | None,
                 reader_schema: str):
        self.rules = rules
        self.tenant_label_capacity = tenant_label_capacity
        self.schema_registry_url = schema_registry_url
        self.reader_schema = reader_schema

    def open(self, function_context: FunctionContext):
        self._counters = _TenantCounters(function_context, self.tenant_label_capacity)
        self._errors = InternalErrors("validate_event", function_context.get_metric_group())
        self._catalog = None  # None: the offline catalog (jobs run without a registry in no deployment)
        if self.schema_registry_url:
            from vigil.registry.catalog import RegistrySchemaCatalog
            self._catalog = RegistrySchemaCatalog(self.schema_registry_url, self.reader_schema)

    def is_deterministic(self) -> bool:
        # The event-time skew rule reads the wall clock. Declaring it also stops the planner from
        # evaluating it once per consumer of the verdicts view: one call per record.
        return False

    def eval(self, payload, key):
        return self._errors.guard(lambda: self._verdict_row(payload, key),
                                  lambda detail: self._internal_error_row(payload, detail))

    def _verdict_row(self, payload, key):
        verdict = validate(payload, key, int(time.time() * 1000), self.rules, self._catalog)
        event = verdict.event
        tenant = event.get("tenant_id") if event and verdict.reason != "invalid_identifier" else None
        values = _row_values(event) if event else _EMPTY_EVENT
        self._counters.count_record(tenant)
        if verdict.reason is not None:
            self._counters.inc(verdict.reason, tenant)
        return Row(verdict.reason, verdict.detail, len(payload or b""), *values)

    def _internal_error_row(self, payload, detail: str):
        # No event fields: whatever was decoded is suspect; the bytes are in the DLQ record.
        self._counters.count_record(None)
        self._counters.inc("internal_error", None)
        return Row("internal_error", detail, len(payload or b""), *_EMPTY_EVENT)

    def close(self):
        self._counters.flush()


class CountRejection(ScalarFunction):
    def __init__(self, tenant_label_capacity: int):
        self.tenant_label_capacity = tenant_label_capacity

    def open(self, function_context: FunctionContext):
        self._counters = _TenantCounters(function_context, self.tenant_label_capacity)
        self._errors = InternalErrors("count_rejection", function_context.get_metric_group())

    def is_deterministic(self) -> bool:
        # It has a side effect (metrics): the planner must call it once per routed record.
        return False

    def eval(self, reason, tenant):
        # A failed count must not cost the record its route: the reason is returned either way.
        return self._errors.guard(lambda: self._count(reason, tenant), lambda _detail: reason)

    def _count(self, reason, tenant):
        self._counters.inc(reason, tenant)
        return reason


def validate_event_udf(rules: ValidationRules, tenant_label_capacity: int, schema_registry_url: str | None,
                       reader_schema: str = "event-v2.avsc"):
    return udf(ValidateEvent(rules, tenant_label_capacity, schema_registry_url, reader_schema),
               input_types=[DataTypes.BYTES(), DataTypes.BYTES()], result_type=VERDICT_TYPE)


def count_rejection_udf(tenant_label_capacity: int):
    return udf(CountRejection(tenant_label_capacity), input_types=[DataTypes.STRING(), DataTypes.STRING()],
               result_type=DataTypes.STRING())
