"""The generator: deterministic, realistic, and every injected record gets the verdict it claims."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter, defaultdict

import pytest

from udfs.validation import ValidationRules, to_millis, validate
from vigil import serde
from vigil.generator.bad_input import BAD_KINDS, STREAM_KINDS
from vigil.generator.mixes import MIXES
from vigil.generator.scripts import SCENARIOS
from vigil.generator.stream import LOYALTY_TIERS, PAYMENT_METHODS, EventStream, StreamSettings
from vigil.generator.world import CITIES, World, haversine_km

START_MS = 1_795_000_000_000


def take(n: int, **settings) -> list:
    defaults = dict(seed=7, start_ms=START_MS, rate=1000.0)
    return list(itertools.islice(EventStream(StreamSettings(**{**defaults, **settings})).records(), n))


def test_same_seed_same_events_other_seed_other_events():
    a, b, c = take(3000, bad_fraction=0.05), take(3000, bad_fraction=0.05), take(3000, seed=8, bad_fraction=0.05)
    assert [(r.key, r.value, r.timestamp_ms) for r in a] == [(r.key, r.value, r.timestamp_ms) for r in b]
    assert [r.value for r in a] != [r.value for r in c]


def test_merchant_traffic_is_skewed_and_spread_over_tenants():
    records = take(20_000)
    merchants = Counter(serde.decode(r.value)["merchant_id"] for r in records)
    tenants = {serde.decode(r.value)["tenant_id"] for r in records}
    top_share = sum(n for _, n in merchants.most_common(100)) / len(records)
    assert top_share > 0.3, "the top 1% of merchants should carry a large share (Zipf)"
    assert len(merchants) > 1000 and len(tenants) >= 30


def test_keys_are_tenant_and_user_and_timestamps_follow_event_time():
    for record in take(2000):
        decoded = serde.decode(record.value)
        assert record.key == f"{decoded['tenant_id']}:{decoded['user_id']}".encode()
        assert record.timestamp_ms == to_millis(decoded["event_time"])


def test_scripted_records_carry_their_event_type_and_injected_ones_none():
    records = take(5000, bad_fraction=0.1, fraud_fraction=0.1)
    scripted = [r for r in records if r.kind == "session" or r.scenario]
    injected = [r for r in records if r.kind != "session" and r.scenario is None]
    assert all(r.event_type == serde.decode(r.value)["event_type"] for r in scripted)
    assert {"payment_attempt", "checkout"} <= {r.event_type for r in scripted}
    assert injected and all(r.event_type is None for r in injected)


def test_event_time_advances_at_the_requested_rate():
    records = take(5000, rate=500.0)
    span_s = (records[-1].timestamp_ms - records[0].timestamp_ms) / 1000
    assert 9.0 <= span_s <= 10.5
    times = [r.timestamp_ms for r in records]
    assert times == sorted(times), "without injected late events, event time never goes back"


def test_every_scenario_is_injected_and_labelled():
    # 3 events/s: almost two hours of event time, so that amount anomalies (a history first) show.
    records = take(20_000, fraud_fraction=0.05, rate=3.0)
    by_scenario = Counter(r.scenario for r in records if r.scenario)
    assert set(by_scenario) == set(SCENARIOS)
    instances = {r.instance for r in records if r.scenario}
    assert all(i.startswith(tuple(SCENARIOS)) for i in instances)


def scenario_instances(scenario: str) -> list[list[dict]]:
    """Decoded events of each complete-looking instance of `scenario` (a slow stream: scenarios
    span minutes of event time)."""
    instances: dict[str, list[dict]] = {}
    started_early: set[str] = set()
    for i, r in enumerate(take(20_000, rate=10.0, fraud_fraction=0.2)):  # 2000 s of event time
        if r.scenario == scenario:
            if i < 6_000:  # started in the first 600 s: every scenario spans < 1400 s, so complete
                started_early.add(r.instance)
            instances.setdefault(r.instance, []).append(serde.decode(r.value))
    return [events for instance, events in instances.items() if instance in started_early]


def test_card_testing_is_small_declined_attempts_then_a_large_payment():
    events = scenario_instances("card_testing")[0]
    cards = {e["card_fingerprint"] for e in events if e["card_fingerprint"]}
    attempts = [e for e in events if e["event_type"] == "payment_attempt"]
    assert len(cards) == 1 and len(attempts) >= 7
    assert max(a["amount"] for a in attempts[:-1]) < attempts[-1]["amount"] / 10


def test_impossible_travel_moves_faster_than_a_plane():
    instances = scenario_instances("impossible_travel")
    assert instances
    for events in instances:
        a, b = events[1], events[2]
        km = haversine_km(a["latitude"], a["longitude"], b["latitude"], b["longitude"])
        hours = (to_millis(b["event_time"]) - to_millis(a["event_time"])) / 3_600_000
        assert km / hours > 900


def test_account_takeover_fits_in_thirty_minutes_from_a_new_device_and_country():
    for events in scenario_instances("account_takeover"):
        kinds = [e["event_type"] for e in events]
        assert kinds[:2] == ["login", "password_change"] and "checkout" in kinds
        span_min = (to_millis(events[-1]["event_time"]) - to_millis(events[0]["event_time"])) / 60_000
        assert span_min < 30
        assert len({e["device_id"] for e in events}) == 1


def test_bad_input_covers_every_kind_in_about_the_asked_share():
    records = take(30_000, bad_fraction=0.1)
    kinds = Counter(r.kind for r in records)
    assert set(BAD_KINDS) | set(STREAM_KINDS) <= set(kinds)
    injected = sum(n for k, n in kinds.items() if k in BAD_KINDS or k in STREAM_KINDS)
    assert 0.08 < injected / len(records) < 0.12


def test_each_injected_record_gets_the_verdict_the_generator_expects():
    """Closes the loop between generator and validator, without a JVM: late and duplicate
    records are valid on their own (Flink SQL routes them), everything else must match."""
    records = take(20_000, bad_fraction=0.2)
    now = max(r.timestamp_ms for r in records)  # the last record may be a late one
    for record in records:
        verdict = validate(record.value, record.key, now, ValidationRules())
        expected = "clean" if record.expected in ("late_event", "duplicate") else record.expected
        assert (verdict.reason or "clean") == expected, (record.kind, verdict.detail)


def test_duplicates_repeat_an_earlier_record_exactly():
    records = take(20_000, bad_fraction=0.2)
    seen = {}
    for record in records:
        if record.kind == "duplicate":
            assert seen[record.event_id] == (record.key, record.value, record.timestamp_ms)
        elif record.expected == "clean" and record.event_id:
            seen[record.event_id] = (record.key, record.value, record.timestamp_ms)


def test_users_are_stable_without_being_stored():
    world = World(seed=3, tenants=5, merchants=100, users=1000)
    assert world.user("t001", 42) == world.user("t001", 42)
    assert world.user("t001", 42) != world.user("t002", 42)
    assert 0 <= world.user("t001", 42).home < len(CITIES)


@pytest.mark.parametrize("fraction", [0.0, 0.3])
def test_late_and_out_of_order_events_go_back_in_time(fraction):
    records = take(10_000, bad_fraction=fraction)
    clock = START_MS
    for i, record in enumerate(records):
        clock = START_MS + i  # 1 ms per event at 1000/s
        if record.kind == "late":
            assert clock - record.timestamp_ms >= 120_000
        elif record.kind == "out_of_order":
            assert 0 < clock - record.timestamp_ms <= 3000


def test_v2_share_and_v2_fields_without_changing_the_rest_of_the_stream():
    v1_only, mixed = take(5000), take(5000, v2_fraction=0.5)
    # The schema choice has its own random generator: the same events, ids and times either way.
    assert [(r.event_id, r.timestamp_ms, r.key) for r in v1_only] == [(r.event_id, r.timestamp_ms, r.key) for r in mixed]
    assert all(r.value[1:5] == (1).to_bytes(4, "big") for r in v1_only if r.kind == "session")
    sessions = [r for r in mixed if r.kind == "session"]
    v2 = [serde.decode(r.value) for r in sessions if r.value[1:5] == (2).to_bytes(4, "big")]
    assert 0.45 < len(v2) / len(sessions) < 0.55
    assert all(e["schema_version"] == 2 and e["loyalty_tier"] in LOYALTY_TIERS for e in v2)
    assert all((e["payment_method"] in PAYMENT_METHODS) == bool(e["card_fingerprint"]) for e in v2)


def test_amount_anomaly_labels_only_payments_far_above_the_customers_steady_history():
    records = take(20_000, fraud_fraction=0.3, rate=3.0)
    attempts_of = defaultdict(list)   # (tenant, user) -> [(labelled, amount)] in event-time order
    for record in records:
        if record.event_type == "payment_attempt":
            event = serde.decode(record.value)
            attempts_of[(event["tenant_id"], event["user_id"])].append((record.scenario, float(event["amount"])))
    checked = 0
    for attempts in attempts_of.values():
        first = next((i for i, (scenario, _) in enumerate(attempts) if scenario == "amount_anomaly"), None)
        if first is None:
            continue
        history = [amount for scenario, amount in attempts[:first]]
        assert len(history) >= 6 and all(scenario is None for scenario, _ in attempts[:first])
        usual = statistics.median(history)
        assert all(amount >= 10 * usual for scenario, amount in attempts[first:] if scenario == "amount_anomaly")
        checked += 1
    assert checked >= 5


def test_diverse_mix_has_its_own_world_and_near_misses_that_are_not_fraud():
    records = take(30_000, mix="diverse", rate=1.0)  # 8 h: flights take hours
    events = [(r, serde.decode(r.value)) for r in records]
    assert len({e["tenant_id"] for _, e in events}) <= 8
    sold_in = {c[4] for c in CITIES if c[0] in MIXES["diverse"].merchant_cities}
    assert {e["currency"] for _, e in events if e["currency"]} <= sold_in
    # Families: a shared device, at most four accounts on it, all living in one place.
    users_on = defaultdict(set)
    for r, e in events:
        if r.scenario is None:
            users_on[e["device_id"]].add((e["user_id"], e["latitude"], e["longitude"]))
    shared = [u for u in users_on.values() if len({user for user, *_ in u}) > 1]
    assert shared and all(len({user for user, *_ in u}) <= 4 and len({(la, lo) for _, la, lo in u}) == 1
                          for u in shared)
    # Nobody in ordinary traffic (travellers included) moves faster than an airliner.
    last_seen, travels = {}, 0
    for r, e in sorted(events, key=lambda pair: pair[0].timestamp_ms):
        if r.scenario is not None:
            continue
        user = (e["tenant_id"], e["user_id"])
        if user in last_seen:
            at, lat, lon = last_seen[user]
            km = haversine_km(lat, lon, e["latitude"], e["longitude"])
            if km > 300:
                travels += 1
                assert km / max((r.timestamp_ms - at) / 3_600_000, 1e-9) < 900
        last_seen[user] = (r.timestamp_ms, e["latitude"], e["longitude"])
    assert travels > 0


def test_volatile_spenders_show_their_volatility_in_any_five_payments():
    from vigil.generator.behaviours import volatile_spender
    world = World(seed=3, tenants=3, merchants=50, users=1000)
    for seed in range(200):
        amounts = [float(f["amount"]) for _, f in volatile_spender(random.Random(seed), world)
                   if f["event_type"] == "payment_attempt"]
        history, final = amounts[:-1], amounts[-1]
        assert all(max(w) / min(w) >= 2.5 for w in (history[i:i + 5] for i in range(len(history) - 4)))
        assert final <= 1.5 * max(history) * 1.01   # within what they paid (1 % for rounding)
