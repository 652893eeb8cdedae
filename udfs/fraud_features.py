"""Real-time features per user, card, device and merchant: definitions, batch recomputation, and
the model's input vector.

The fraud job computes the features in Flink SQL (sql/queries/fraud_features.sql, in the JVM)
for every event of an entity, as of that event (the event included), and publishes the latest
row per entity on `features.online` (upsert, compacted, key `tenant:entity_type:entity_id`).
`batch_features` below is the same definition written as a plain computation over a list of
events; the integration test proves the stream equals it. Definitions, for an event at time t
of entity E (events of E ordered by event time; "payments" are `payment_attempt` events). "The
hour" is the minute of t (UTC, whole minutes since the epoch) and the 59 minutes before it, up to
t: a window of 59 to 60 minutes, which the job keeps as per-minute counters at constant cost per
event (java/vigil-formats HourFeatures, ADR 0007):

| feature | definition |
| --- | --- |
| events_1h | events of E in the hour |
| payments_1h | payments of E in the hour |
| amount_usd_1h | sum of the payments' amounts in USD in the hour |
| distinct_{users,devices,cards,ips,countries}_1h | distinct non-null values among E's events in the hour |
| seconds_since_last | whole seconds since E's previous event (null for its first, and when that was more than RETAIN_MS (24 h) before) |
| km_per_hour_since_last | great-circle km from the previous event's place / max(seconds, 1) * 3600 (null when either has no place) |
| amount_z_1h | for a payment with an amount and >= 2 payments in the hour: (ln usd - mean ln usd) / max(std ln usd, 0.5) over the hour's payments; else null |

Amounts in USD use the job's reference rates (vigil.event_model.UNITS_PER_USD); ln(usd) is
floored at ln(0.01). Events of one entity at the same millisecond count in the order they were
read: the first does not see the second, and is the second's previous event.

>>> e = [{"event_time": 0, "event_type": "payment_attempt", "amount_usd": 10.0, "user_id": "u1"},
...      {"event_time": 60_000, "event_type": "payment_attempt", "amount_usd": 20.0, "user_id": "u2"}]
>>> f = batch_features(e)[-1]
>>> f["events_1h"], f["payments_1h"], f["amount_usd_1h"], f["distinct_users_1h"], f["seconds_since_last"]
(2, 2, 30.0, 2, 60)
"""

from __future__ import annotations

import math

ENTITY_COLUMNS = {"user": "user_id", "card": "card_fingerprint", "device": "device_id", "merchant": "merchant_id"}
FEATURES = ("events_1h", "payments_1h", "amount_usd_1h", "distinct_users_1h", "distinct_devices_1h",
            "distinct_cards_1h", "distinct_ips_1h", "distinct_countries_1h", "seconds_since_last",
            "km_per_hour_since_last", "amount_z_1h")
MINUTE_MS = 60_000
HOUR_MINUTES = 60
# An entity quiet for longer starts afresh (its previous event forgotten), so the job can drop a
# quiet entity's state by event time (java/vigil-formats HourFeatures.RETAIN_MS, ADR 0007).
RETAIN_MS = 24 * 3_600_000
_DISTINCT = {"distinct_users_1h": "user_id", "distinct_devices_1h": "device_id",
             "distinct_cards_1h": "card_fingerprint", "distinct_ips_1h": "ip", "distinct_countries_1h": "country"}


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a 6371 km sphere, the formula of the job's SQL."""
    a = (math.sin(math.radians(lat2 - lat1) / 2) ** 2
         + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def _log_usd(event: dict) -> float:
    return math.log(max(event.get("amount_usd") or 0.0, 0.01))


def batch_features(events: list[dict]) -> list[dict]:
    """Features of one entity as of each of its events (event_time in ms, amount_usd computed),
    in event-time order (events of one millisecond in the order given). Quadratic in the hour's
    events: meant for tests and audits."""
    ordered = sorted(events, key=lambda e: e["event_time"])  # stable: same-millisecond events as read
    rows = []
    for i, event in enumerate(ordered):
        t = event["event_time"]
        first_minute = t // MINUTE_MS - HOUR_MINUTES + 1
        window = [e for e in ordered[:i + 1] if e["event_time"] // MINUTE_MS >= first_minute]
        payments = [e for e in window if e["event_type"] == "payment_attempt"]
        row = {"event_id": event.get("event_id"), "event_time": t,
               "events_1h": len(window), "payments_1h": len(payments),
               "amount_usd_1h": sum(e.get("amount_usd") or 0.0 for e in payments)}
        for name, column in _DISTINCT.items():
            row[name] = len({e.get(column) for e in window if e.get(column) is not None})
        previous = ordered[i - 1] if i and t - ordered[i - 1]["event_time"] <= RETAIN_MS else None
        row["seconds_since_last"] = int((t - previous["event_time"]) / 1000) if previous else None
        located = previous and None not in (previous.get("latitude"), previous.get("longitude"),
                                            event.get("latitude"), event.get("longitude"))
        row["km_per_hour_since_last"] = (
            haversine_km(previous["latitude"], previous["longitude"], event["latitude"], event["longitude"])
            * 3600.0 / max(row["seconds_since_last"], 1) if located else None)
        row["amount_z_1h"] = None
        if event["event_type"] == "payment_attempt" and len(payments) >= 2 and event.get("amount_usd") is not None:
            logs = [_log_usd(e) for e in payments]
            mean = sum(logs) / len(logs)
            variance = max(sum(x * x for x in logs) / len(logs) - mean * mean, 0.0)
            row["amount_z_1h"] = (_log_usd(event) - mean) / max(math.sqrt(variance), 0.5)
        rows.append(row)
    return rows


# The models' view of a payment: the user's features scaled into [0, 1] by fixed caps (Half-Space
# Trees need bounded inputs; fixed caps keep a replay's scores identical, unlike a learned scaler).
MODEL_INPUTS = {
    "amount_usd": 5000.0, "events_1h": 200.0, "payments_1h": 50.0, "amount_usd_1h": 20000.0,
    "distinct_devices_1h": 10.0, "distinct_cards_1h": 10.0, "distinct_ips_1h": 10.0,
    "distinct_countries_1h": 5.0, "km_per_hour_since_last": 2000.0, "amount_z_1h": 8.0,
}


def model_vector(features: dict) -> dict[str, float]:
    """Bounded, log-scaled model inputs from one feature row; missing values count as 0.

    >>> v = model_vector({"amount_usd": 5000.0, "events_1h": 1, "amount_z_1h": -3.0})
    >>> v["amount_usd"], v["amount_z_1h"], v["payments_1h"]
    (1.0, 0.0, 0.0)
    """
    vector = {}
    for name, cap in MODEL_INPUTS.items():
        value = float(features.get(name) or 0.0)
        value = value if value > 0.0 else 0.0  # also turns NaN into 0: one NaN would poison a model
        vector[name] = min(math.log1p(value) / math.log1p(cap), 1.0)
    return vector
