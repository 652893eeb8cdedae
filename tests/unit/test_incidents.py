"""Incident grouping (udfs/incidents.py): which alerts share an incident, the window that stops
chaining, determinism, and closing; examples and properties over arbitrary alert sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.incidents import AlertFacts, IncidentBook, incident_id

MIN = 60_000
WINDOW = 60 * MIN


def alert(n: int, at_min: float, *entities: tuple[str, str], pattern: str = "velocity", score: float = 0.7,
          tenant: str = "t1") -> AlertFacts:
    return AlertFacts(tenant, f"a{n}", f"e{n}", int(at_min * MIN), score, (pattern,), tuple(entities))


def book() -> IncidentBook:
    return IncidentBook({}, {}, WINDOW)


def test_alerts_sharing_a_card_user_or_device_form_one_incident():
    b = book()
    first = b.add(alert(1, 0, ("card", "c1"), ("user", "u1"), pattern="card_testing", score=0.95))
    b.add(alert(2, 1, ("card", "c1"), ("user", "u2")))              # same card
    b.add(alert(3, 2, ("device", "d1"), ("user", "u2")))            # via u2, joined by alert 2
    last = b.add(alert(4, 3, ("user", "u1"), pattern="amount_anomaly"))
    assert last.incident_id == first.incident_id == incident_id("t1", "a1")
    assert last.alert_ids == ["a1", "a2", "a3", "a4"]
    assert last.patterns == ["card_testing", "velocity", "amount_anomaly"]
    assert set(last.entities) == {"card:c1", "user:u1", "user:u2", "device:d1"}
    assert (last.first_ms, last.last_ms, last.severity) == (0, 3 * MIN, "critical")


def test_ips_and_merchants_do_not_link():
    b = book()
    one = b.add(alert(1, 0, ("ip", "10.0.0.1"), ("merchant", "m1"), ("user", "u1")))
    two = b.add(alert(2, 1, ("ip", "10.0.0.1"), ("merchant", "m1"), ("user", "u2")))
    assert one.incident_id != two.incident_id
    assert "ip:10.0.0.1" in one.entities  # kept as evidence, just not a link


def test_the_window_stops_chaining():
    b = book()
    first = b.add(alert(1, 0, ("user", "u1")))
    b.add(alert(2, 50, ("user", "u1")))
    at_end = b.add(alert(3, 60, ("user", "u1")))       # exactly the window after the first: joins
    later = b.add(alert(4, 61, ("user", "u1")))        # past it: a new incident, not a chain
    assert at_end.incident_id == first.incident_id and at_end.alert_ids == ["a1", "a2", "a3"]
    assert later.incident_id != first.incident_id and later.alert_ids == ["a4"]


def test_an_alert_linking_two_incidents_joins_the_older_and_leads_later_ones_there():
    b = book()
    old = b.add(alert(1, 0, ("card", "c1")))
    new = b.add(alert(2, 5, ("device", "d1")))
    bridge = b.add(alert(3, 10, ("card", "c1"), ("device", "d1")))
    after = b.add(alert(4, 11, ("device", "d1")))
    assert old.incident_id != new.incident_id
    assert bridge.incident_id == old.incident_id == after.incident_id


def test_closing_forgets_an_incident_and_its_links():
    b = book()
    first = b.add(alert(1, 0, ("user", "u1")))
    closed = b.close([first.incident_id, "unknown"])
    assert [(i.incident_id, i.status) for i in closed] == [(first.incident_id, "closed")]
    assert b.incidents == {} and b.index == {}
    assert b.add(alert(2, 30, ("user", "u1"))).incident_id == incident_id("t1", "a2")


def test_a_model_only_alert_opens_an_incident_named_after_the_model():
    b = book()
    incident = b.add(AlertFacts("t1", "a1", "e1", 0, 0.8, ("model",), (("user", "u1"),)))
    assert incident.opened_by == "model" and incident.severity == "high"


ENTITY = st.tuples(st.sampled_from(["user", "card", "device", "ip", "merchant"]),
                   st.sampled_from(["x", "y", "z", ""]))
ALERTS = st.lists(st.tuples(st.integers(0, 3 * WINDOW), st.lists(ENTITY, max_size=4),
                            st.floats(0, 1, allow_nan=False)), max_size=40)


def run(alerts, close_between: bool = True) -> list:
    """Alerts in event-time order (ties by id, as the scorer decides them); incidents closed when
    their window is over, as the scorer's timers do. Returns (alert id, incident) per alert."""
    b, out, due = book(), [], {}
    ordered = sorted(enumerate(alerts), key=lambda p: (p[1][0], p[0]))
    for n, (at, entities, score) in ordered:
        if close_between:
            for closes_at in sorted(t for t in due if t < at):
                b.close(due.pop(closes_at))
        incident = b.add(AlertFacts("t1", f"a{n}", f"e{n}", at, score, ("p",), tuple(entities)))
        if len(incident.alert_ids) == 1:
            due.setdefault(incident.first_ms + WINDOW, []).append(incident.incident_id)
        out.append((f"a{n}", incident.incident_id, incident.first_ms, tuple(entities), at))
    return out


@settings(max_examples=300, deadline=None)
@given(ALERTS)
def test_properties_over_arbitrary_alerts(alerts):
    out = run(alerts)
    members: dict[str, list] = {}
    for alert_id, incident, first_ms, entities, at in out:
        members.setdefault(incident, []).append((alert_id, first_ms, entities, at))
    for incident, rows in members.items():
        first = rows[0]
        # deterministic id from the opening alert; no incident spans more than the window
        assert incident == incident_id("t1", first[0])
        assert all(0 <= at - first[3] <= WINDOW for *_, at in rows)
        # every alert after the first shares a linking entity with an earlier member
        links = {f"{t}:{i}" for t, i in first[2] if t in ("user", "card", "device") and i}
        for _, _, entities, _ in rows[1:]:
            mine = {f"{t}:{i}" for t, i in entities if t in ("user", "card", "device") and i}
            assert mine & links
            links |= mine
    # the same alerts in the same order give the same incidents (a replay)
    assert run(alerts) == out


@settings(max_examples=200, deadline=None)
@given(ALERTS)
def test_an_alert_without_a_linking_entity_opens_its_own_incident(alerts):
    for alert_id, incident, _, entities, _ in run(alerts):
        if not any(t in ("user", "card", "device") and i for t, i in entities):
            assert incident == incident_id("t1", alert_id)
