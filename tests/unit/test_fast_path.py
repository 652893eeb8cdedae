"""The low-latency scorer: snapshots the exact path writes, read-only, refreshed on a clock."""

from __future__ import annotations

import json

from udfs.fast_path import VELOCITY_1H, FastScorer
from udfs.fraud_features import model_vector
from udfs.fraud_models import ModelConfig, ModelState, SnapshotStore

FEATURES = {"amount_usd": 120.0, "events_1h": 4, "payments_1h": 1}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def trained(config: ModelConfig, steps: int = 300) -> ModelState:
    state = ModelState.fresh(config)
    for i in range(steps):
        vector = model_vector({"amount_usd": 10 + i % 50, "events_1h": 1 + i % 7, "payments_1h": 1})
        state.score_and_learn(vector)
        state.learn_label(vector, i % 9 == 0)
    return state


def test_without_snapshots_only_velocity_speaks():
    scorer = FastScorer(ModelConfig(), snapshots=None)
    risk, reasons, anomaly, supervised, steps, _ = scorer.decide("t1", json.dumps(FEATURES))
    assert (risk, reasons, anomaly, supervised, steps) == (0.0, [], None, None, 0)
    risk, reasons, *_ = scorer.decide("t1", json.dumps({**FEATURES, "payments_1h": VELOCITY_1H}))
    assert reasons == ["velocity"] and risk >= 0.7


def test_scores_with_the_newest_snapshot_once_the_refresh_interval_has_passed(tmp_path):
    config = ModelConfig()
    store, clock = SnapshotStore(tmp_path), Clock()
    scorer = FastScorer(config, store, refresh_s=30, clock=clock)
    assert scorer.decide("t1", json.dumps(FEATURES))[4] == 0          # nothing published yet
    state = trained(config)
    for version, model in state.models.items():
        store.save(version, "t1", state.steps[version], model, state.labels_seen)
    clock.now += 10
    assert scorer.decide("t1", json.dumps(FEATURES))[4] == 0          # cached until the refresh
    clock.now += 25
    risk, reasons, anomaly, supervised, steps, decided_ms = scorer.decide("t1", json.dumps(FEATURES))
    assert steps == sum(state.steps.values()) and decided_ms == int(clock.now * 1000)
    vector = model_vector(FEATURES)
    assert anomaly == state.models[config.anomaly].score_one(vector)
    assert supervised == state.models[config.supervised].predict_proba_one(vector)[True]
    # Read-only: scoring does not train the snapshot's models.
    assert scorer.decide("t1", json.dumps(FEATURES))[2:4] == (anomaly, supervised)
    # Another tenant never sees t1's models.
    assert scorer.decide("t2", json.dumps(FEATURES))[4] == 0
