"""The fraud job's decision metrics: latency buckets per path and alerts per pattern.

Read by the Prometheus rules (ops/prometheus/rules/slo.yml and fraud.yml; names in ops/README.md):
- `vigil_decision_latency_ms_bucket{path, le_ms}`: one Flink Counter per decision path and bound,
  cumulative like a Prometheus histogram's buckets: a decision counts in every bucket whose bound
  is at or above its latency, and always in `inf`. `exact` is counted here, by the risk scorer (a
  process function: its metrics are reported). `fast` is counted by the Java function
  count_decision_latency (java/vigil-formats CountDecisionLatency) in the job's SQL, because the
  fast path decides in a Python scalar function and thread mode never reports a scalar
  function's metric group (docs/adr/0005); its bounds must stay equal to LATENCY_BOUNDS_MS (a
  unit test compares them). Counters, not a Flink Histogram: the reporter exports a histogram as a
  summary, whose quantiles cannot be added up across subtasks or windows. Integer bounds: the
  reporter would turn "0.5" into "0_5".
- `vigil_fraud_alerts{pattern}`: once per reason code of every alert the risk scorer decides.
  The label set is bounded: the known codes, anything else (a pattern added to the SQL without
  being listed here) is counted as "other".

The logic (which buckets, which label) is pure; `DecisionLatency` and `AlertPatterns` only hold
the counters, registered once at open(): per decision, one bisect and at most 11 `inc()` calls.
No pyflink here: the metric group is duck-typed (`add_group(key, value)`, `counter(name)`).

>>> first_bucket(120), LATENCY_LABELS[first_bucket(120):][:2]
(2, ('250', '500'))
>>> LATENCY_LABELS[first_bucket(75_000):]
('inf',)
>>> pattern_label("card_testing"), pattern_label("brand_new_pattern")
('card_testing', 'other')
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds of the latency buckets, ms (ascending). The SLO's thresholds (500 ms fast,
# 10,000 ms exact) must stay among them.
LATENCY_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
LATENCY_LABELS = tuple(str(bound) for bound in LATENCY_BOUNDS_MS) + ("inf",)
PATHS = ("fast", "exact")

# Reason codes of alerts: the SQL patterns' fraud_pattern values (sql/queries/fraud_patterns.sql,
# fraud_velocity.sql) and the models' codes (udfs/fraud_models.combine). A unit test keeps the
# SQL's list and this one equal.
SQL_PATTERNS = ("card_testing", "account_takeover", "impossible_travel", "shared_device", "cross_tenant_card",
                "refund_abuse", "amount_anomaly", "velocity")
MODEL_CODES = ("model_anomaly", "model_supervised")
PATTERN_CODES = SQL_PATTERNS + MODEL_CODES
OTHER_PATTERN = "other"
_KNOWN = frozenset(PATTERN_CODES)


def first_bucket(latency_ms: int) -> int:
    """Index in LATENCY_LABELS of the smallest bound at or above `latency_ms`: the decision counts
    in that bucket and every later one (len(LATENCY_BOUNDS_MS), i.e. `inf` alone, above them all).
    A negative latency (clocks apart) counts in every bucket.

    >>> [first_bucket(ms) for ms in (-5, 0, 50, 51, 10000, 60000, 60001)]
    [0, 0, 0, 1, 7, 9, 10]
    """
    return bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def pattern_label(code: str | None) -> str:
    """The `pattern` label of a reason code: the code if known, else "other"."""
    return code if code in _KNOWN else OTHER_PATTERN


class DecisionLatency:
    """The cumulative latency counters of one decision path, registered at construction (open())."""

    def __init__(self, metric_group, path: str):
        self._counters = ()  # no metric group (metrics disabled): nothing to count
        if metric_group is not None:
            path_group = metric_group.add_group("path", path)
            self._counters = tuple(path_group.add_group("le_ms", label).counter("vigil_decision_latency_ms_bucket")
                                   for label in LATENCY_LABELS)

    def observe(self, latency_ms: int | None) -> None:
        """Count one decision. None (the event's append time unknown) is not counted: it has no
        latency to judge."""
        if latency_ms is None:
            return
        counters = self._counters
        for i in range(first_bucket(latency_ms), len(counters)):
            counters[i].inc()


class AlertPatterns:
    """`vigil_fraud_alerts{pattern}` counters, one per known code and "other", registered at open()."""

    def __init__(self, metric_group):
        self._counters = {}  # no metric group (metrics disabled): nothing to count
        if metric_group is not None:
            self._counters = {code: metric_group.add_group("pattern", code).counter("vigil_fraud_alerts")
                              for code in PATTERN_CODES + (OTHER_PATTERN,)}

    def count(self, reason_codes) -> None:
        """Once per reason code of one alert."""
        if not self._counters:
            return
        for code in reason_codes or ():
            self._counters[pattern_label(code)].inc()
