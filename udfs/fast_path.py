"""The low-latency decision: a payment scored the moment it is read, without waiting for the
watermark or a checkpoint (docs/adr/0005).

It uses the user's features in processing time (the same SQL definitions, ordered by arrival)
and the newest model snapshots the exact path published for the tenant (udfs/fraud_models.py),
read-only: this path never learns, so it can run anywhere and restart freely. A tenant without
snapshots yet is scored by its velocity alone. The decision carries the same alert_id as the exact
path's decision for the event, so consumers de-duplicate the two.

>>> scorer = FastScorer(ModelConfig(), snapshots=None, clock=lambda: 10.0)
>>> risk, reasons, anomaly, supervised, steps, decided_ms = scorer.decide("t1", '{"payments_1h": 45}')
>>> reasons, anomaly, decided_ms
(['velocity'], None, 10000)
"""

from __future__ import annotations

import json
import time

from udfs.fraud_features import model_vector
from udfs.fraud_models import MODEL_VERSIONS, ModelConfig, SnapshotStore, combine
from vigil.fraud_rules import RuleParameters

# The exact path's 1-hour velocity threshold (default rules), applied to the user's payments.
VELOCITY_1H = RuleParameters().velocity_1h


class FastScorer:
    """Per-worker cache of each tenant's newest snapshots, refreshed every `refresh_s`."""

    def __init__(self, config: ModelConfig, snapshots: SnapshotStore | None, refresh_s: float = 30.0,
                 clock=time.time):
        self.config = config
        self.snapshots = snapshots
        self.refresh_s = refresh_s
        self.clock = clock
        self._models: dict[str, tuple[float, dict]] = {}   # tenant -> (loaded at, {version: snapshot})

    def _tenant_models(self, tenant: str) -> dict:
        now = self.clock()
        cached = self._models.get(tenant)
        if cached is None or now - cached[0] >= self.refresh_s:
            loaded = {}
            if self.snapshots is not None:
                for version in (self.config.anomaly, self.config.supervised):
                    snapshot = self.snapshots.latest(version, tenant)
                    if snapshot is not None:
                        loaded[version] = snapshot
            cached = self._models[tenant] = (now, loaded)
        return cached[1]

    def decide(self, tenant: str, features_json: str):
        """(risk, reasons, anomaly score, supervised probability, model steps, decided at ms)."""
        features = json.loads(features_json)
        models = self._tenant_models(tenant)
        vector = model_vector(features)
        scores, steps, labels_seen = {}, 0, 0
        for version, snapshot in models.items():
            model = snapshot["model"]
            if MODEL_VERSIONS[version][0] == "anomaly":
                scores[version] = float(model.score_one(vector))
            else:
                scores[version] = float(model.predict_proba_one(vector).get(True, 0.0))
                labels_seen = snapshot.get("labels_seen", 0)
            steps += snapshot["steps"]
        hits = [("velocity", 0.6 + 0.1 * features["payments_1h"] / VELOCITY_1H)] \
            if (features.get("payments_1h") or 0) >= VELOCITY_1H else []
        risk, reasons = combine(hits, scores, self.config, labels_seen)
        return (risk, reasons, scores.get(self.config.anomaly), scores.get(self.config.supervised), steps,
                int(self.clock() * 1000))
