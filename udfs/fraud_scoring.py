"""The fraud job's decision step: models, pattern hits and labels of one tenant, in event time.

Input (one stream, keyed by tenant_id; built in SQL by jobs/fraud_detection.py and jobs/fraud_sql.py):
- `payment`: a payment attempt with its user's features (JSON), to score;
- `hit`: a pattern or rule detection from the SQL patterns, for its triggering event;
- `label`: a chargeback label (is_fraud) for an earlier payment, at its label time.
Every item waits for the watermark to pass its time. The SQL operators upstream emit a pattern
hit or a feature row for time t before their watermark passes t, so when this operator's
event-time timer for t fires, every hit of every event at t has arrived: the event is decided
once, with everything known about it, and labels and payments are learned in event-time order
(a replay gives the same scores). Outputs: a `score` record for every payment and an `alert`
record for every event with a hit or a risk at or above the alert threshold.

State per tenant (Flink keyed state): the models (written every `snapshot_every` learning steps,
with a versioned snapshot beside it; the live models are kept in the Python worker between
writes, since serialising Half-Space Trees costs ~20 ms), items waiting for the watermark (by
time), and the model vector of every payment until its label arrives or the label horizon
passes (an event-time timer removes it).
"""

from __future__ import annotations

import hashlib
import json
import time

from udfs.fraud_features import model_vector
from udfs.fraud_models import ModelConfig, ModelState, SnapshotStore, combine, role_scores
from udfs.incidents import AlertFacts, Incident, IncidentBook

# The decision record, defined once: (field, kind) in the order of the scorer's output rows. The
# operator's Flink types and the topics' SQL columns are derived from it. Kinds: "string",
# "double", "long", "strings" (a list), "time" (epoch ms here, TIMESTAMP(3) in the topics).
# `output` says where a row goes: "score", "alert" or "error" (the dead-letter topic).
# The reason code of a payment that reached the job behind its watermark (scored without patterns).
LATE_EVENT = "late_event"

DECISION_FIELDS = (
    ("output", "string"), ("alert_id", "string"), ("tenant_id", "string"), ("fraud_pattern", "string"),
    ("entity_type", "string"), ("entity_id", "string"), ("event_id", "string"), ("event_time", "time"),
    ("score", "double"), ("reason_codes", "strings"), ("evidence", "string"), ("rules_effective_from", "time"),
    ("anomaly_score", "double"), ("supervised_score", "double"), ("shadow_score", "double"),
    ("model_versions", "string"), ("detection_latency_ms", "long"), ("decided_at", "time"))
# An `incident` row (udfs/incidents.py) reuses the decision fields (alert_id is the incident id,
# fraud_pattern the opening pattern, entity_* the opening alert's, event_id/event_time the latest
# alert's, score the highest, reason_codes the patterns) and adds these; decisions leave them null.
INCIDENT_FIELDS = (("first_seen", "time"), ("alert_count", "long"), ("entities", "strings"),
                   ("alert_ids", "strings"), ("severity", "string"), ("status", "string"))
OUTPUT_FIELDS = tuple(name for name, _ in DECISION_FIELDS + INCIDENT_FIELDS)
OUTPUT_KINDS = tuple(kind for _, kind in DECISION_FIELDS + INCIDENT_FIELDS)
# Lists are empty, not null: PyFlink's thread-mode converter cannot take a null array.
_NO_INCIDENT = tuple([] if kind == "strings" else None for _, kind in INCIDENT_FIELDS)


def alert_id(tenant_id: str, event_id: str) -> str:
    """One decision per triggering event: the same id on every replay, restore, and on both paths."""
    return hashlib.sha256(f"{tenant_id}|{event_id}".encode()).hexdigest()


class Decider:
    """Turns the items of one tenant at one event time into score and alert records (no Flink)."""

    def __init__(self, config: ModelConfig, snapshots: SnapshotStore | None, clock=time.time):
        self.config = config
        self.snapshots = snapshots
        self.clock = clock

    def decide(self, key: str, models: ModelState, items: list[dict], vectors: dict,
               incidents: IncidentBook | None = None) -> list[tuple]:
        """Labels first (they are older news), then events by id; `vectors` maps payment event ids
        to model vectors for the label join (the caller persists it). With `incidents`, each alert
        also yields the incident it joined or opened, as it stands after it."""
        out = []
        for label in sorted((i for i in items if i["kind"] == "label"), key=lambda i: i["event_id"]):
            vector = vectors.pop(label["event_id"], None)
            if vector is not None:
                models.learn_label(vector, bool(label["is_fraud"]))
        events: dict[str, list[dict]] = {}
        for item in items:
            if item["kind"] != "label":
                events.setdefault(item["event_id"], []).append(item)
        for event_id in sorted(events):
            records, facts = self._decide_event(key, models, events[event_id], vectors)
            out.extend(records)
            if facts is not None and incidents is not None:
                out.append(self.incident_record(incidents.add(facts)))
        return out

    def incident_record(self, incident: Incident) -> tuple:
        """An `incident` output row: the incident as it stands (the topic keeps the latest per id)."""
        entity_type, entity_id = incident.entities[0].split(":", 1) if incident.entities else (None, None)
        return ("incident", incident.incident_id, incident.tenant_id, incident.opened_by,
                entity_type, entity_id, incident.latest_event_id, incident.last_ms,
                float(incident.max_score), list(incident.patterns), None, None, None, None, None, None, None,
                int(self.clock() * 1000),
                incident.first_ms, len(incident.alert_ids), list(incident.entities), list(incident.alert_ids),
                incident.severity, incident.status)

    def _decide_event(self, key: str, models: ModelState, group: list[dict],
                      vectors: dict) -> tuple[list[tuple], AlertFacts | None]:
        """The event's score and alert records, and what incident grouping needs of its alert."""
        payment = next((i for i in group if i["kind"] == "payment"), None)
        hits = sorted((i for i in group if i["kind"] == "hit"), key=lambda i: (-i["score"], i["fraud_pattern"]))
        scores, features = {}, None
        links = []
        late = False
        if payment is not None:
            features = json.loads(payment["detail"])
            # The payment's device and card (not features): what links its alert to an incident.
            links = [(kind, features.pop(name)) for kind, name in (("device", "device_id"), ("card", "card_fingerprint"))
                     if features.get(name)]
            # Arrived behind the watermark: scored on its arrival-order features, no patterns.
            late = bool(features.pop("late", False))
            vector = model_vector(features)
            scores = models.score_and_learn(vector)
            vectors[payment["event_id"]] = vector
        risk, reasons = combine([(h["fraud_pattern"], h["score"]) for h in hits], scores, self.config,
                                models.labels_seen)
        first = payment or hits[0]
        roles = role_scores(scores, self.config)
        evidence = json.dumps({
            "patterns": [{"pattern": h["fraud_pattern"], "entity_type": h["entity_type"],
                          "entity_id": h["entity_id"], "score": round(h["score"], 4),
                          "evidence": json.loads(h["detail"] or "null")} for h in hits],
            "models": {version: round(score, 6) for version, score in sorted(scores.items())},
            "labels_seen": models.labels_seen,
            "features": features,
            **({"late": True} if late else {}),
        }, sort_keys=True)
        now_ms = int(self.clock() * 1000)
        appended = first.get("appended_ms")
        primary = hits[0] if hits else None
        record = (
            alert_id(first["tenant_id"], first["event_id"]), first["tenant_id"],
            primary["fraud_pattern"] if primary else ("model" if reasons else None),
            primary["entity_type"] if primary else "user",
            primary["entity_id"] if primary else payment["entity_id"],
            first["event_id"], first["event_ms"], float(risk), [*reasons, LATE_EVENT] if late else reasons, evidence,
            (primary or payment)["rules_ms"],
            roles["anomaly"], roles["supervised"], roles["shadow"],
            ",".join(sorted(scores)) or None,
            now_ms - appended if appended is not None else None, now_ms)
        out, facts = [], None
        if payment is not None:
            out.append(("score",) + record + _NO_INCIDENT)
        if hits or risk >= self.config.alert_threshold:
            out.append(("alert",) + record + _NO_INCIDENT)
            entities = [(h["entity_type"], h["entity_id"]) for h in hits]
            if payment is not None:
                entities += [("user", payment["entity_id"])] + links
            facts = AlertFacts(first["tenant_id"], record[0], first["event_id"], first["event_ms"], float(risk),
                               tuple(dict.fromkeys(h["fraud_pattern"] for h in hits)) or ("model",),
                               tuple(dict.fromkeys(entities)))
        return out, facts

    def models_for(self, key: str, stored: ModelState | None) -> ModelState:
        """The key's models: Flink state if any, else the newest snapshots, else fresh ones."""
        restored = None
        if stored is None or set(stored.models) != set(self.config.versions()):
            restored = self.snapshots.restore(self.config, key) if self.snapshots else None
        if stored is None:
            return ModelState.fresh(self.config, restored)
        # Versions added since the state was written start from a snapshot or fresh; versions no
        # longer configured (a retired shadow) are dropped.
        fresh = ModelState.fresh(self.config, restored)
        for version in fresh.models:
            if version in stored.models:
                fresh.models[version], fresh.steps[version] = stored.models[version], stored.steps[version]
        fresh.labels_seen = stored.labels_seen
        return fresh

    def snapshot(self, key: str, models: ModelState) -> None:
        if self.snapshots is None:
            return
        for version, model in models.models.items():
            self.snapshots.save(version, key, models.steps[version], model, models.labels_seen)
