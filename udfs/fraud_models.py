"""Online fraud models (River) per tenant, their versioned snapshots, and the combined risk score.

Two models score every payment attempt of a tenant from its user's features
(udfs/fraud_features.model_vector):
- an unsupervised anomaly model (Half-Space Trees) that learns from every payment;
- a supervised model (standardised logistic regression) that learns from delayed chargeback
  labels (`labels.chargebacks`: a chargeback, or "matured" when none came), joined back to the
  features the payment had when it was scored.
A `shadow` version is scored and trained beside the live ones; its score goes into the evidence,
never into the risk, so a new version can be compared on live traffic before it is switched on.
Every model version is a named, immutable recipe in `MODEL_VERSIONS` with a fixed seed: a replay
of the same events and labels in event-time order gives the same scores.

The risk of an event combines independent signals as 1 - prod(1 - s): every pattern or rule hit
with its own score, the anomaly model above its threshold, the supervised model above its own
(once it has seen enough labels). Reason codes name every signal that contributed.

>>> state = ModelState.fresh(ModelConfig())
>>> scores = state.score_and_learn({"amount_usd": 0.5})
>>> sorted(scores)
['hst-v1', 'logreg-v1']
>>> risk, reasons = combine([("card_testing", 0.8)], scores, ModelConfig(), state.labels_seen)
>>> round(risk, 2), reasons
(0.8, ['card_testing'])
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path


def _half_space_trees(n_trees: int, height: int, window_size: int):
    from river import anomaly

    return anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=42)


def _logistic_regression():
    from river import compose, linear_model, optim, preprocessing

    return compose.Pipeline(preprocessing.StandardScaler(),
                            linear_model.LogisticRegression(optimizer=optim.SGD(0.05)))


# name -> (kind, recipe). Never change a recipe in place: add a version (snapshots are per version).
MODEL_VERSIONS = {
    "hst-v1": ("anomaly", lambda: _half_space_trees(n_trees=10, height=6, window_size=250)),
    "hst-v2": ("anomaly", lambda: _half_space_trees(n_trees=15, height=8, window_size=500)),
    "logreg-v1": ("supervised", _logistic_regression),
}


@dataclass(frozen=True)
class ModelConfig:
    anomaly: str = "hst-v1"
    supervised: str = "logreg-v1"
    shadow: str | None = None            # a version scored beside the live ones, never in the risk
    anomaly_threshold: float = 0.85      # HST score in [0, 1]; above it the anomaly contributes
    anomaly_weight: float = 0.6          # contribution at score 1.0 (linear from the threshold)
    supervised_threshold: float = 0.7    # fraud probability above which the model contributes
    min_labels: int = 200                # the supervised model speaks only after this many labels
    alert_threshold: float = 0.7         # risk at or above it raises an alert without any pattern hit
    snapshot_dir: str | None = None      # versioned snapshots (restored when a key has no state)
    snapshot_every: int = 2000           # learning steps between snapshots and model-state writes

    def __post_init__(self):
        for role, name in (("anomaly", self.anomaly), ("supervised", self.supervised), ("shadow", self.shadow)):
            if name is None:
                continue
            if name not in MODEL_VERSIONS:
                raise ValueError(f"unknown model version {name!r} for {role}; known: {', '.join(MODEL_VERSIONS)}")
            if role != "shadow" and MODEL_VERSIONS[name][0] != role:
                raise ValueError(f"model {name!r} is a {MODEL_VERSIONS[name][0]} model, not {role}")

    def versions(self) -> list[str]:
        return [v for v in (self.anomaly, self.supervised, self.shadow) if v]


@dataclass
class ModelState:
    """The models of one key (a tenant): what the fraud job keeps in Flink state."""

    models: dict = field(default_factory=dict)       # version -> River model
    steps: dict = field(default_factory=dict)        # version -> learning steps so far
    labels_seen: int = 0

    @staticmethod
    def fresh(config: ModelConfig, restored: dict | None = None) -> "ModelState":
        state = ModelState()
        for version in config.versions():
            model, steps = (restored or {}).get(version, (None, 0))
            state.models[version] = model if model is not None else MODEL_VERSIONS[version][1]()
            state.steps[version] = steps
        state.labels_seen = (restored or {}).get("labels_seen", 0)
        return state

    def score_and_learn(self, vector: dict[str, float]) -> dict[str, float]:
        """Scores of every model for one payment; anomaly models then learn it (score first, so a
        payment is judged against the past only)."""
        scores = {}
        for version, model in self.models.items():
            kind = MODEL_VERSIONS[version][0]
            if kind == "anomaly":
                scores[version] = float(model.score_one(vector))
                model.learn_one(vector)
                self.steps[version] += 1
            else:
                scores[version] = float(model.predict_proba_one(vector).get(True, 0.0))
        return scores

    def learn_label(self, vector: dict[str, float], is_fraud: bool) -> None:
        for version, model in self.models.items():
            if MODEL_VERSIONS[version][0] == "supervised":
                model.learn_one(vector, bool(is_fraud))
                self.steps[version] += 1
        self.labels_seen += 1


def role_scores(scores: dict[str, float], config: ModelConfig) -> dict[str, float | None]:
    """{version: score} -> {"anomaly": .., "supervised": .., "shadow": ..} of the configured roles."""
    return {"anomaly": scores.get(config.anomaly), "supervised": scores.get(config.supervised),
            "shadow": scores.get(config.shadow) if config.shadow else None}


def combine(hits: list[tuple[str, float]], scores: dict[str, float], config: ModelConfig,
            labels_seen: int) -> tuple[float, list[str]]:
    """Risk in [0, 1] and reason codes from pattern hits (name, score) and model scores by version."""
    signals = [(name, max(0.0, min(1.0, score))) for name, score in hits]
    anomaly = scores.get(config.anomaly)
    if anomaly is not None and anomaly >= config.anomaly_threshold:
        strength = (anomaly - config.anomaly_threshold) / max(1e-9, 1.0 - config.anomaly_threshold)
        signals.append(("model_anomaly", config.anomaly_weight * max(0.1, strength)))
    supervised = scores.get(config.supervised)
    if supervised is not None and labels_seen >= config.min_labels and supervised >= config.supervised_threshold:
        signals.append(("model_supervised", supervised))
    remaining = 1.0
    for _, score in signals:
        remaining *= 1.0 - score
    reasons = []
    for name, _ in signals:
        if name not in reasons:
            reasons.append(name)
    return 1.0 - remaining, reasons


class SnapshotStore:
    """Versioned model snapshots on a file system path (a mounted volume or object-store mount in
    production): `<root>/<version>/<escaped key>/<steps>.pkl`, written atomically, the last 3 kept.
    The fraud job restores a key's models from here when Flink state has none (a fresh start, or
    an upgrade that could not keep state), and the low-latency path scores with them."""

    KEEP = 3

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _dir(self, version: str, key: str) -> Path:
        # Percent-escaped (UTF-8), so that distinct keys never share a directory ("a@b" vs "a_b")
        # and no key is a path of its own ("/", or "." and ".." by escaping a leading dot).
        escaped = re.sub(r"^\.|[^A-Za-z0-9_.-]", lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), key)
        return self.root / version / escaped

    def save(self, version: str, key: str, steps: int, model, labels_seen: int = 0) -> Path:
        directory = self._dir(version, key)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{steps:012d}.pkl"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps({"version": version, "key": key, "steps": steps, "model": model,
                                      "labels_seen": labels_seen}, protocol=5))
        os.replace(tmp, path)
        for old in sorted(directory.glob("*.pkl"))[:-self.KEEP]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, version: str, key: str) -> dict | None:
        candidates = sorted(self._dir(version, key).glob("*.pkl"))
        for path in reversed(candidates):
            try:
                return pickle.loads(path.read_bytes())
            except (OSError, pickle.UnpicklingError, EOFError):
                continue  # a half-copied file from a crash: fall back to the previous one
        return None

    def restore(self, config: ModelConfig, key: str) -> dict:
        """{version: (model, steps), "labels_seen": n} of the newest snapshots for `key`."""
        restored: dict = {}
        for version in config.versions():
            snapshot = self.latest(version, key)
            if snapshot:
                restored[version] = (snapshot["model"], snapshot["steps"])
                if MODEL_VERSIONS[version][0] == "supervised":
                    restored["labels_seen"] = snapshot.get("labels_seen", 0)
        return restored
