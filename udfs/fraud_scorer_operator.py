"""PyFlink adapters of the fraud job's Python steps: udfs/fraud_scoring.Decider as a
KeyedProcessFunction keyed by tenant_id (exact path), udfs/fast_path.FastScorer as a scalar
function (low-latency path).

Kept apart so the decision logic is tested without a JVM; everything here is Flink plumbing:
state handles, event-time timers, metrics.
"""

from __future__ import annotations

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from udfs.fast_path import FastScorer
from udfs.fraud_models import ModelConfig, SnapshotStore
from udfs.fraud_scoring import OUTPUT_FIELDS, Decider

OUTPUT_TYPE = Types.ROW_NAMED(list(OUTPUT_FIELDS), [
    Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(),
    Types.STRING(), Types.LONG(), Types.DOUBLE(), Types.OBJECT_ARRAY(Types.STRING()), Types.STRING(),
    Types.LONG(), Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(), Types.STRING(), Types.LONG(), Types.LONG()])


class RiskScorer(KeyedProcessFunction):
    def __init__(self, config: ModelConfig, label_horizon_ms: int):
        self.config = config
        self.label_horizon_ms = label_horizon_ms

    def open(self, runtime_context: RuntimeContext):
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.model_state = runtime_context.get_state(ValueStateDescriptor("models", pickled))
        self.pending = runtime_context.get_map_state(MapStateDescriptor("pending", Types.LONG(), pickled))
        self.vectors = runtime_context.get_map_state(MapStateDescriptor("payment_vectors", Types.STRING(), pickled))
        self.expiry = runtime_context.get_map_state(MapStateDescriptor("vector_expiry", Types.LONG(), pickled))
        snapshots = SnapshotStore(self.config.snapshot_dir) if self.config.snapshot_dir else None
        self.decider = Decider(self.config, snapshots)
        self.models = {}         # tenant -> ModelState, live between writes to model_state
        self.unsaved = {}        # tenant -> learning steps since the last write
        metrics = runtime_context.get_metrics_group()
        self.scored = metrics.counter("payments_scored")
        self.alerts = metrics.counter("alerts_decided")
        self.labels_joined = metrics.counter("labels_joined")
        self.labels_unmatched = metrics.counter("labels_unmatched")

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        item = value.as_dict()
        at = item["label_ms"] if item["kind"] == "label" else item["event_ms"]
        if at <= ctx.timer_service().current_watermark():
            # Behind the watermark (a label older than the events' progress): decide it now.
            yield from self._decide(ctx.get_current_key(), [item], ctx.timer_service())
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
            yield from self._decide(key, items, ctx.timer_service())
        expired = self.expiry.get(timestamp)
        if expired is not None:
            self.expiry.remove(timestamp)
            for event_id in expired:
                self.vectors.remove(event_id)

    def _decide(self, key: str, items: list[dict], timers):
        models = self.models.get(key)
        if models is None:
            models = self.models[key] = self.decider.models_for(key, self.model_state.value())
        # The label join reads and writes the vectors of this batch's payments and labels only.
        vectors = {}
        for item in items:
            if item["kind"] == "label":
                vector = self.vectors.get(item["event_id"])
                if vector is None:
                    self.labels_unmatched.inc()
                else:
                    vectors[item["event_id"]] = vector
                    self.vectors.remove(item["event_id"])
                    self.labels_joined.inc()
        before = sum(models.steps.values())
        records = self.decider.decide(key, models, items, vectors)
        for event_id, vector in vectors.items():   # payments of this batch, now awaiting labels
            self.vectors.put(event_id, vector)
            expire_at = next(i["event_ms"] for i in items if i["event_id"] == event_id) + self.label_horizon_ms
            due = self.expiry.get(expire_at) or []
            due.append(event_id)
            self.expiry.put(expire_at, due)
            timers.register_event_time_timer(expire_at)
        self.unsaved[key] = self.unsaved.get(key, 0) + sum(models.steps.values()) - before
        if self.unsaved[key] >= self.config.snapshot_every:
            self.model_state.update(models)
            self.decider.snapshot(key, models)
            self.unsaved[key] = 0
        for record in records:
            (self.scored if record[0] == "score" else self.alerts).inc()
            yield Row(*record)


class FastDecision(ScalarFunction):
    """The low-latency path's scoring as a Table API scalar function (udfs/fast_path.py)."""

    def __init__(self, config: ModelConfig):
        self.config = config

    def open(self, function_context: FunctionContext):
        snapshots = SnapshotStore(self.config.snapshot_dir) if self.config.snapshot_dir else None
        self.scorer = FastScorer(self.config, snapshots)

    def eval(self, tenant_id: str, features_json: str):
        return Row(*self.scorer.decide(tenant_id, features_json))


def fast_decision_udf(config: ModelConfig):
    return udf(FastDecision(config), result_type=DataTypes.ROW([
        DataTypes.FIELD("score", DataTypes.DOUBLE()), DataTypes.FIELD("reason_codes", DataTypes.ARRAY(DataTypes.STRING())),
        DataTypes.FIELD("anomaly_score", DataTypes.DOUBLE()), DataTypes.FIELD("supervised_score", DataTypes.DOUBLE()),
        DataTypes.FIELD("model_steps", DataTypes.BIGINT()), DataTypes.FIELD("decided_ms", DataTypes.BIGINT())]))
