"""PyFlink adapters of the fraud job's Python steps: udfs/fraud_scoring.Decider as a
KeyedProcessFunction keyed by tenant_id (exact path), udfs/fast_path.FastScorer as a scalar
function (low-latency path).

Kept apart so the decision logic is tested without a JVM; everything here is Flink plumbing:
state handles, event-time timers, metrics. Metrics of the risk scorer (a process function, whose
metrics are reported): payments_scored, alerts_decided, incident_updates, labels_joined,
labels_unmatched, vigil_fraud_alerts{pattern}, vigil_decision_latency_ms_bucket{path="exact"}
(udfs/decision_metrics.py), vigil_internal_errors{function="risk_scorer"}. The fast path's
scalar function registers none: in thread mode PyFlink never reports a scalar function's metric
group, so its latency and internal errors are counted by Java functions in the job's SQL
(jobs/fraud_sql.py, docs/adr/0005). Both are guarded (udfs/guard.py): an exception while
deciding becomes an `error` output per event (the job routes it to its dead-letter topic as
`internal_error`), never a job failure.
"""

from __future__ import annotations

import json
import time

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from udfs.decision_metrics import AlertPatterns, DecisionLatency
from udfs.fast_path import FastScorer
from udfs.fraud_models import ModelConfig, SnapshotStore
from udfs.fraud_scoring import OUTPUT_FIELDS, OUTPUT_KINDS, Decider
from udfs.guard import InternalErrors
from udfs.incidents import IncidentBook
from udfs.label_join import LabelJoin

_FLINK_TYPES = {"string": Types.STRING(), "double": Types.DOUBLE(), "long": Types.LONG(), "time": Types.LONG(),
                "strings": Types.OBJECT_ARRAY(Types.STRING())}
OUTPUT_TYPE = Types.ROW_NAMED(list(OUTPUT_FIELDS), [_FLINK_TYPES[kind] for kind in OUTPUT_KINDS])
_ALERT_ID = OUTPUT_FIELDS.index("alert_id")
_REASON_CODES = OUTPUT_FIELDS.index("reason_codes")
_LATENCY = OUTPUT_FIELDS.index("detection_latency_ms")


class MapStateDict:
    """A Flink MapState with the dict operations udfs/incidents.IncidentBook uses."""

    def __init__(self, state):
        self.state = state

    def get(self, key, default=None):
        value = self.state.get(key)
        return default if value is None else value

    def __setitem__(self, key, value):
        self.state.put(key, value)

    def __delitem__(self, key):
        self.state.remove(key)


class RiskScorer(KeyedProcessFunction):
    def __init__(self, config: ModelConfig, label_horizon_ms: int, incident_window_ms: int | None = None):
        self.config = config
        self.label_horizon_ms = label_horizon_ms
        self.incident_window_ms = incident_window_ms  # None: no incidents (udfs/incidents.py)

    def open(self, runtime_context: RuntimeContext):
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.model_state = runtime_context.get_state(ValueStateDescriptor("models", pickled))
        self.pending = runtime_context.get_map_state(MapStateDescriptor("pending", Types.LONG(), pickled))
        self.vectors = runtime_context.get_map_state(MapStateDescriptor("payment_vectors", Types.STRING(), pickled))
        self.expiry = runtime_context.get_map_state(MapStateDescriptor("vector_expiry", Types.LONG(), pickled))
        self.label_join = LabelJoin(self.vectors, self.expiry, self.label_horizon_ms)
        self.incidents = None
        if self.incident_window_ms is not None:
            open_incidents = runtime_context.get_map_state(MapStateDescriptor("incidents", Types.STRING(), pickled))
            index = runtime_context.get_map_state(MapStateDescriptor("incident_index", Types.STRING(), Types.STRING()))
            # closing time -> ids of the incidents opened at that time minus the window
            self.incidents_due = runtime_context.get_map_state(MapStateDescriptor("incidents_due", Types.LONG(), pickled))
            self.incidents = IncidentBook(MapStateDict(open_incidents), MapStateDict(index), self.incident_window_ms)
        snapshots = SnapshotStore(self.config.snapshot_dir) if self.config.snapshot_dir else None
        self.decider = Decider(self.config, snapshots)
        self.models = {}         # tenant -> ModelState, live between writes to model_state
        self.unsaved = {}        # tenant -> learning steps since the last write
        metrics = runtime_context.get_metrics_group()
        self.scored = metrics.counter("payments_scored")
        self.alerts = metrics.counter("alerts_decided")
        self.incident_updates = metrics.counter("incident_updates")
        self.labels_joined = metrics.counter("labels_joined")
        self.labels_unmatched = metrics.counter("labels_unmatched")
        self.alert_patterns = AlertPatterns(metrics)
        self.latency = DecisionLatency(metrics, "exact")
        self.errors = InternalErrors("risk_scorer", metrics)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        item = value.as_dict()
        yield from self.errors.guard(lambda: list(self._accept(item, ctx)), lambda detail: error_rows([item], detail))

    def _accept(self, item: dict, ctx: KeyedProcessFunction.Context):
        at = item["label_ms"] if item["kind"] == "label" else item["event_ms"]
        if at <= ctx.timer_service().current_watermark():
            # Behind the watermark (a label older than the events' progress): decide it now.
            yield from self._guarded_decide(ctx.get_current_key(), [item], ctx.timer_service())
            return
        waiting = self.pending.get(at) or []
        waiting.append(item)
        self.pending.put(at, waiting)
        ctx.timer_service().register_event_time_timer(at)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        key = ctx.get_current_key()
        items = self.pending.get(timestamp)
        if items is not None:
            self.pending.remove(timestamp)
            yield from self._guarded_decide(key, items, ctx.timer_service())
        self.label_join.expire(timestamp)
        due = self.incidents_due.get(timestamp) if self.incidents is not None else None
        if due is not None:
            # After this timestamp's alerts (same timer): an alert exactly at the end still joins.
            self.incidents_due.remove(timestamp)
            for incident in self.incidents.close(due):
                self.incident_updates.inc()
                yield Row(*self.decider.incident_record(incident))

    def _guarded_decide(self, key: str, items: list[dict], timers):
        """_decide's records, or one `error` record per event of the batch if deciding raised."""
        return self.errors.guard(lambda: list(self._decide(key, items, timers)),
                                 lambda detail: error_rows(items, detail))

    def _decide(self, key: str, items: list[dict], timers):
        models = self.models.get(key)
        if models is None:
            models = self.models[key] = self.decider.models_for(key, self.model_state.value())
        # The label join reads and writes the vectors of this batch's payments and labels only.
        vectors, joined, unmatched = self.label_join.take(items)
        self.labels_joined.inc(joined)
        self.labels_unmatched.inc(unmatched)
        before = sum(models.steps.values())
        records = self.decider.decide(key, models, items, vectors, self.incidents)
        # What is left in `vectors` now: the payments of this batch, awaiting their labels.
        event_ms = {item["event_id"]: item["event_ms"] for item in items if item["kind"] == "payment"}
        for expire_at in self.label_join.keep(vectors, event_ms):
            timers.register_event_time_timer(expire_at)
        self.unsaved[key] = self.unsaved.get(key, 0) + sum(models.steps.values()) - before
        if self.unsaved[key] >= self.config.snapshot_every:
            self.model_state.update(models)
            self.decider.snapshot(key, models)
            self.unsaved[key] = 0
        latency_counted = set()  # alert ids: an event's score and alert are one decision
        for record in records:
            if record[0] == "incident":
                self.incident_updates.inc()
                if record[OUTPUT_FIELDS.index("alert_count")] == 1:  # just opened: close it when its window ends
                    closes_at = record[OUTPUT_FIELDS.index("first_seen")] + self.incident_window_ms
                    self.incidents_due.put(closes_at, (self.incidents_due.get(closes_at) or []) + [record[1]])
                    timers.register_event_time_timer(closes_at)
            else:
                if record[0] == "score":
                    self.scored.inc()
                else:
                    self.alerts.inc()
                    self.alert_patterns.count(record[_REASON_CODES])
                if record[_ALERT_ID] not in latency_counted:
                    latency_counted.add(record[_ALERT_ID])
                    # detection_latency_ms: the decision's wall-clock time (udfs/fraud_scoring.py,
                    # after the watermark passed the event) minus the event's append time in
                    # events.clean (its Kafka record timestamp); once per decided event.
                    self.latency.observe(record[_LATENCY])
            yield Row(*record)


def error_rows(items: list[dict], detail: str) -> list[Row]:
    """One `error` output per event (or label) of a batch that could not be decided: the detail and
    the inputs the scorer got, as JSON in `evidence` (the job's DLQ record carries both)."""
    by_event: dict[tuple, list[dict]] = {}
    for item in items:
        by_event.setdefault((item.get("tenant_id"), item.get("event_id"), item.get("kind") == "label"), []).append(item)
    rows = []
    for (tenant, event_id, _), group in by_event.items():
        evidence = json.dumps({"error": detail, "inputs": group}, sort_keys=True, default=str)
        # arrays empty, not null: the thread-mode converter cannot take a null array
        values = {name: [] if kind == "strings" else None for name, kind in zip(OUTPUT_FIELDS, OUTPUT_KINDS)}
        values.update(output="error", tenant_id=tenant, event_id=event_id, evidence=evidence,
                      reason_codes=["internal_error"], event_time=group[0].get("event_ms"),
                      decided_at=int(time.time() * 1000))
        rows.append(Row(*(values[name] for name in OUTPUT_FIELDS)))
    return rows


class FastDecision(ScalarFunction):
    """The low-latency path's scoring as a Table API scalar function (udfs/fast_path.py)."""

    def __init__(self, config: ModelConfig):
        self.config = config

    def open(self, function_context: FunctionContext):
        snapshots = SnapshotStore(self.config.snapshot_dir) if self.config.snapshot_dir else None
        self.scorer = FastScorer(self.config, snapshots)
        # No metrics here: in thread mode a scalar function's metric group is never reported. The
        # job's SQL counts the decision latency (count_decision_latency) and the internal errors
        # (count_internal_error) in Java where the rows are written; the guard still logs.
        self.errors = InternalErrors("fast_decision")

    def is_deterministic(self) -> bool:
        # One call per payment, shared by the decisions sink and the dead-letter sink.
        return False

    def eval(self, tenant_id: str, features_json: str):
        return self.errors.guard(lambda: Row(*self.scorer.decide(tenant_id, features_json), None),
                                 # reason_codes empty, not null: the thread-mode converter cannot
                                 # take a null array (the job failed on every scorer error)
                                 lambda detail: Row(None, [], None, None, None, int(time.time() * 1000), detail))


def fast_decision_udf(config: ModelConfig):
    return udf(FastDecision(config), result_type=DataTypes.ROW([
        DataTypes.FIELD("score", DataTypes.DOUBLE()), DataTypes.FIELD("reason_codes", DataTypes.ARRAY(DataTypes.STRING())),
        DataTypes.FIELD("anomaly_score", DataTypes.DOUBLE()), DataTypes.FIELD("supervised_score", DataTypes.DOUBLE()),
        DataTypes.FIELD("model_steps", DataTypes.BIGINT()), DataTypes.FIELD("decided_ms", DataTypes.BIGINT()),
        DataTypes.FIELD("error", DataTypes.STRING())]))
