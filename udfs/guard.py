"""Per-record Python code never fails a job: an unexpected exception becomes a verdict.

Every function Flink calls once per record (validation, rule parsing, scoring) wraps its body with
`InternalErrors.guard`: an exception that is not an infrastructure failure is counted
(`vigil_internal_errors{function}`), logged with its traceback (rate-limited), and turned into the
caller's fallback, which routes the record to a dead-letter topic with reason `internal_error`,
the exception's type and message, and the record's bytes. A bug then costs one record in the DLQ,
not a job that restarts on the same record forever (docs/adr/0006).

Infrastructure failures are not the record's fault: `vigil.serde.OUTAGES` (the schema registry
unreachable or answering garbage; any OSError, e.g. a store or disk) and MemoryError pass
through, so the job fails, restarts from its checkpoint and retries instead of sending valid events
to the DLQ. No pyflink here: the metric group is duck-typed.

>>> errors = InternalErrors("demo")
>>> errors.guard(lambda: 1 / 0, fallback=lambda detail: ("internal_error", detail))
('internal_error', 'ZeroDivisionError: division by zero')
>>> errors.count
1
"""

from __future__ import annotations

import logging
import traceback

from vigil.serde import OUTAGES

MAX_DETAIL_CHARS = 500
_LOG = logging.getLogger("vigil.internal_errors")
# A dependency (registry, broker, store) failed; the record may be fine: retry, never DLQ.
_PASS_THROUGH = (*OUTAGES, MemoryError)


def describe(exc: BaseException) -> str:
    """'TypeError: message' on one line, bounded: the DLQ detail of an internal error."""
    message = (str(exc).splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {message}"
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."


class InternalErrors:
    """Counts, logs and converts the unexpected exceptions of one per-record function."""

    def __init__(self, function: str, metric_group=None, log_first: int = 10, log_every: int = 1000):
        self.function = function
        self.count = 0
        self._log_first, self._log_every = log_first, log_every
        self._counter = None
        if metric_group is not None:
            self._counter = metric_group.add_group("function", function).counter("vigil_internal_errors")

    def guard(self, body, fallback):
        """body() or, if it raises anything but an infrastructure failure, fallback(detail)."""
        try:
            return body()
        except _PASS_THROUGH:
            raise
        except Exception as exc:  # noqa: BLE001 - the point: no record may stop the job
            return fallback(self.record(exc))

    def record(self, exc: BaseException) -> str:
        self.count += 1
        if self._counter is not None:
            self._counter.inc()
        if self.count <= self._log_first or self.count % self._log_every == 0:
            _LOG.error("internal error #%d in %s: %s", self.count, self.function,
                       "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:])
        return describe(exc)
