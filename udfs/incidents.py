"""Incidents: one tenant's alerts about the same customer, card or device, grouped so that an
analyst reads one incident per attack rather than one alert per triggering event and pattern.

Rule (docs/adr/0009-incidents.md): an alert joins the open incident that shares one of its linking
entities (a user, a card or a device: never an IP or a merchant, which unrelated customers
share) and whose first alert is at most `window_ms` older than it; with no such incident it opens
one. An incident never spans more than `window_ms` from its first alert, so one entity's
incidents do not chain across a day of activity; a later alert opens the next incident. When
several incidents qualify (the alert links two of them), it joins the one opened first. Alerts
are taken in event-time order (the risk scorer decides a tenant's events in that order), ties by
event id, so a replay builds the same incidents with the same ids.

Storage-agnostic: `incidents` (incident id -> Incident) and `index` (entity key -> incident id)
are dict-like; the Flink operator passes map-state adapters, the tests plain dicts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

LINKING_TYPES = ("user", "card", "device")
# One hour: an attack's alerts (a card test and its cash-out, a takeover and its checkout, a
# velocity burst) fall within it; a customer alerted again next morning gets a new incident.
DEFAULT_WINDOW_MS = 3_600_000
# Severity from the highest alert score in the incident (udfs/fraud_models.combine's scale).
SEVERITIES = ((0.9, "critical"), (0.75, "high"), (0.5, "medium"), (0.0, "low"))


@dataclass(frozen=True)
class AlertFacts:
    """What incident grouping needs of one alert."""
    tenant_id: str
    alert_id: str
    event_id: str
    event_ms: int
    score: float
    patterns: tuple[str, ...]
    entities: tuple[tuple[str, str], ...]   # (entity_type, entity_id): linking and not


@dataclass
class Incident:
    incident_id: str
    tenant_id: str
    first_ms: int
    last_ms: int
    opened_by: str                      # the opening alert's first pattern
    status: str = "open"                # "closed" once no alert can join any more
    max_score: float = 0.0
    patterns: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)   # "type:id", linking and not
    alert_ids: list[str] = field(default_factory=list)
    latest_event_id: str = ""

    @property
    def severity(self) -> str:
        return next(name for floor, name in SEVERITIES if self.max_score >= floor)

    def linking_keys(self) -> list[str]:
        return [key for key in self.entities if key.split(":", 1)[0] in LINKING_TYPES]


def entity_key(entity_type: str, entity_id: str) -> str:
    return f"{entity_type}:{entity_id}"


def incident_id(tenant_id: str, first_alert_id: str) -> str:
    """Deterministic: the tenant and the alert that opened it."""
    return hashlib.sha256(f"{tenant_id}|incident|{first_alert_id}".encode()).hexdigest()


class IncidentBook:
    """The open incidents of one tenant."""

    def __init__(self, incidents, index, window_ms: int = DEFAULT_WINDOW_MS):
        self.incidents = incidents
        self.index = index
        self.window_ms = window_ms

    def add(self, alert: AlertFacts) -> Incident:
        """The incident `alert` joined or opened, updated (the caller stores nothing else)."""
        keys = sorted({entity_key(t, i) for t, i in alert.entities if t in LINKING_TYPES and i})
        candidates = []
        for key in keys:
            found = self.index.get(key)
            incident = self.incidents.get(found) if found is not None else None
            if incident is not None and incident.status == "open" and alert.event_ms - incident.first_ms <= self.window_ms:
                candidates.append(incident)
        if candidates:
            incident = min(candidates, key=lambda i: (i.first_ms, i.incident_id))
        else:
            incident = Incident(incident_id(alert.tenant_id, alert.alert_id), alert.tenant_id, alert.event_ms,
                                alert.event_ms, alert.patterns[0] if alert.patterns else "model")
        self._join(incident, alert)
        self.incidents[incident.incident_id] = incident
        for key in keys:
            self.index[key] = incident.incident_id
        return incident

    def close(self, incident_ids) -> list[Incident]:
        """Close and forget these incidents (their window is over: no alert can join any more);
        returns them, status "closed", for a final record."""
        closed = []
        for found in sorted(set(incident_ids)):
            incident = self.incidents.get(found)
            if incident is None:
                continue
            incident.status = "closed"
            del self.incidents[found]
            for key in incident.linking_keys():
                if self.index.get(key) == found:
                    del self.index[key]
            closed.append(incident)
        return sorted(closed, key=lambda i: (i.first_ms, i.incident_id))

    @staticmethod
    def _join(incident: Incident, alert: AlertFacts) -> None:
        if alert.alert_id in incident.alert_ids:
            return  # the same alert again (cannot happen with one decision per event; harmless)
        incident.alert_ids.append(alert.alert_id)
        incident.first_ms = min(incident.first_ms, alert.event_ms)
        incident.last_ms = max(incident.last_ms, alert.event_ms)
        incident.latest_event_id = alert.event_id
        incident.max_score = max(incident.max_score, alert.score)
        for pattern in alert.patterns:
            if pattern not in incident.patterns:
                incident.patterns.append(pattern)
        for entity_type, entity_id in alert.entities:
            key = entity_key(entity_type, entity_id)
            if entity_id and key not in incident.entities:
                incident.entities.append(key)
