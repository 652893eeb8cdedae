"""PyFlink adapter for the ingest job: a thin wrapper around udfs.validation.

`ValidateEvent` turns a Kafka record into a ROW (verdict + event fields); it is guarded
(udfs/guard.py): whatever a record holds, it returns a row, never an exception, and a bug becomes
an `internal_error` verdict (vigil_internal_errors{function}).

The per-tenant counters the data-quality alert reads (vigil_ingest_records{tenant},
vigil_ingest_rejected{reason,tenant}) are counted by Java functions in the job's SQL
(java/vigil-formats, TenantCounters): metrics registered from a Python table function are not
reported in thread mode (PyFlink hands them a Beam-backed metric group nothing collects there).
"""

from __future__ import annotations

import time
from operator import itemgetter

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from udfs.guard import InternalErrors
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


class ValidateEvent(ScalarFunction):
    """Decodes each record through the schema registry (writer schema by the id in the record,
    resolved to the job's reader schema), then validates it."""

    def __init__(self, rules: ValidationRules, schema_registry_url: str | None, reader_schema: str):
        self.rules = rules
        self.schema_registry_url = schema_registry_url
        self.reader_schema = reader_schema

    def open(self, function_context: FunctionContext):
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
        values = _row_values(event) if event else _EMPTY_EVENT
        return Row(verdict.reason, verdict.detail, len(payload or b""), *values)

    def _internal_error_row(self, payload, detail: str):
        # No event fields: whatever was decoded is suspect; the bytes are in the DLQ record.
        return Row("internal_error", detail, len(payload or b""), *_EMPTY_EVENT)


def validate_event_udf(rules: ValidationRules, schema_registry_url: str | None,
                       reader_schema: str = "event-v2.avsc"):
    return udf(ValidateEvent(rules, schema_registry_url, reader_schema),
               input_types=[DataTypes.BYTES(), DataTypes.BYTES()], result_type=VERDICT_TYPE)
