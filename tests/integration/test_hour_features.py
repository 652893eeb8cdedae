"""The features' Flink SQL (sql/queries/fraud_features.sql over java/vigil-formats HourFeatures,
and UserActivity for users) equals udfs/fraud_features.batch_features on every row, not only the
latest per entity; UserActivity's device/country uses and previous located event equal a plain
recomputation too.

A Flink MiniCluster reads a CSV file in event time (no Kafka: this checks the aggregate and its
SQL). The traffic is built to hit the edges: events on both sides of minute boundaries and at
exactly 59/60 minutes back, peers at the same millisecond, quiet gaps longer than an hour, one
hot entity with hundreds of distinct users, one whose users all churn (the stale-value sweep
runs), entities quiet for more than a day and a user quiet for more than 30 days (what the job
forgets by event time; every cleanup timer fires as the watermark jumps), null places and amounts.
"""

from __future__ import annotations

import csv
import math
import random

import pytest

from jobs import fraud_detection
from udfs.fraud_features import FEATURES, batch_features
from vigil.flink_env import FlinkSettings, stream_table_environment

T0 = 1_790_000_000_000 - 1_790_000_000_000 % 60_000  # a whole minute
COLUMNS = ("event_id", "event_ms", "tenant_id", "merchant_id", "user_id", "device_id", "card_fingerprint", "ip",
           "country", "event_type", "amount_usd", "latitude", "longitude")
CHURN_EVENTS = 3000
DAY_MS = 24 * 3_600_000
MONTH_MS = 30 * DAY_MS  # java/vigil-formats UserActivity.RETAIN_MS
ACTIVITY = ("device_uses", "country_uses", "prev_located_event_id", "prev_located_country")


def edge_traffic(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    events, n = [], 0

    def add(ms: int, merchant: str, user: str, kind: str = "page_view", amount: float | None = None,
            place: bool = True) -> None:
        nonlocal n
        n += 1
        lat, lon = (rng.uniform(-60, 60), rng.uniform(-170, 170)) if place else (None, None)
        events.append({"event_id": f"e{n:05d}", "event_ms": ms, "tenant_id": "t1", "merchant_id": merchant,
                       "user_id": user, "device_id": f"d{rng.randrange(40)}", "ip": f"10.1.{rng.randrange(30)}",
                       "card_fingerprint": f"c{rng.randrange(25)}" if kind == "payment_attempt" else None,
                       "country": rng.choice(["FR", "DE", None]), "event_type": kind, "amount_usd": amount,
                       "latitude": lat, "longitude": lon})

    # minute edges: the first and last millisecond of minutes, exactly 59 and 60 minutes apart
    for minute in (0, 1, 59, 60, 61, 119, 120):
        add(T0 + minute * 60_000, "m-edge", "u-edge", "payment_attempt", 10.0 + minute)
        add(T0 + minute * 60_000 + 59_999, "m-edge", "u-edge", "payment_attempt", 20.0 + minute)
    # peers: three events of one user at the same millisecond, with different places
    for _ in range(3):
        add(T0 + 30 * 60_000 + 123, "m-edge", "u-peer", "payment_attempt", 5.0)
    add(T0 + 31 * 60_000, "m-edge", "u-peer")
    # a quiet gap longer than the hour, then activity again
    add(T0 + 10 * 60_000, "m-gap", "u-gap", "payment_attempt", 50.0)
    add(T0 + 200 * 60_000, "m-gap", "u-gap", "payment_attempt", 70.0)
    # quiet for longer than a day (the previous event is forgotten) and than 30 days (the user's
    # devices, countries and last place too); the watermark jumps, so every cleanup timer fires
    add(T0 + 5 * 60_000, "m-day", "u-day", "payment_attempt", 30.0)
    add(T0 + 5 * 60_000 + DAY_MS + 60_000, "m-day", "u-day", "payment_attempt", 31.0)
    add(T0 + 7 * 60_000, "m-month", "u-month", "login")
    add(T0 + 7 * 60_000 + 31 * DAY_MS, "m-month", "u-month", "login")
    # a hot merchant: hundreds of distinct users over three hours (stale distinct values are swept)
    for i in range(1500):
        kind = rng.choices(["page_view", "payment_attempt", "login"], [6, 3, 1])[0]
        amount = round(rng.lognormvariate(3, 1.2), 2) if kind == "payment_attempt" and rng.random() < 0.95 else None
        add(T0 + rng.randrange(180 * 60_000), "m-hot", f"u{rng.randrange(400)}", kind, amount,
            place=rng.random() < 0.9)
    # a merchant whose customers churn: a new user on every event, so most values it remembers
    # leave the hour and the stale-value sweep must run (test_the_sweep_runs)
    for i in range(CHURN_EVENTS):
        add(T0 + rng.randrange(180 * 60_000), "m-churn", f"uc{i}", "payment_attempt", 12.5)
    return events


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> list[dict]:
    events = edge_traffic()
    folder = tmp_path_factory.mktemp("hour-features")
    with open(folder / "events.csv", "w", newline="") as f:
        writer = csv.writer(f)
        for e in sorted(events, key=lambda e: e["event_ms"]):
            writer.writerow(["" if e[c] is None else e[c] for c in COLUMNS])
    # RocksDB: every access (de)serialises the accumulators, so equal rows also prove their serializers.
    t_env = stream_table_environment(FlinkSettings(state_backend="rocksdb", max_restarts=0), "hour-features-test")
    t_env.execute_sql(f"""
        CREATE TABLE events_csv (
          event_id STRING, event_ms BIGINT, tenant_id STRING, merchant_id STRING, user_id STRING,
          device_id STRING, card_fingerprint STRING, ip STRING, country STRING, event_type STRING,
          amount DECIMAL(18, 4), latitude DOUBLE, longitude DOUBLE,
          event_time AS CAST(TO_TIMESTAMP_LTZ(event_ms, 3) AS TIMESTAMP(3)),
          WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = '{folder / "events.csv"}', 'format' = 'csv',
                'csv.null-literal' = '')""")
    t_env.execute_sql("CREATE TEMPORARY VIEW clean_events AS SELECT *, 'USD' AS currency, "
                      "CAST(NULL AS STRING) AS status, CAST(NULL AS TIMESTAMP_LTZ(3)) AS appended_at, "
                      "FALSE AS is_late FROM events_csv")  # in order: none late (fraud_verdicts.sql)
    fraud_detection.create_event_views(t_env)
    fraud_detection.create_feature_views(t_env)
    # One job for the four entities (each job costs a MiniCluster start and a read of the file).
    table = t_env.sql_query(" UNION ALL ".join(
        f"SELECT '{entity}' AS entity, entity_id, event_id, {', '.join(FEATURES)} FROM features_{entity}"
        for entity in ("merchant", "user", "card", "device")))
    with table.execute().collect() as results:
        rows = [dict(zip(["entity", "entity_id", "event_id", *FEATURES], row)) for row in results]
    activity = {}
    table = t_env.sql_query("SELECT event_id, " + ", ".join(f"a.{c}" for c in ACTIVITY) + " FROM user_activity")
    with table.execute().collect() as results:
        for row in results:
            activity[row[0]] = dict(zip(ACTIVITY, row[1:]))
    return {"events": events, "rows": rows, "activity": activity}


def test_every_row_equals_the_batch_definition(streamed):
    column = {"merchant": "merchant_id", "user": "user_id", "card": "card_fingerprint", "device": "device_id"}
    compared = 0
    for entity, key in column.items():
        by_entity: dict[str, list[dict]] = {}
        for e in streamed["events"]:
            if e[key] is not None:
                by_entity.setdefault(e[key], []).append({**e, "event_time": e["event_ms"]})
        expected = {(entity, r["event_id"]): r for events in by_entity.values() for r in batch_features(events)}
        got = {(entity, r["event_id"]): r for r in streamed["rows"] if r["entity"] == entity}
        assert set(got) == set(expected), entity
        for k, row in got.items():
            for name in FEATURES:
                want, have = expected[k][name], row[name]
                if want is None or have is None:
                    assert want is have, (k, name, want, have)
                else:
                    assert math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-9), (k, name, want, have)
            compared += 1
    assert compared > 3000


def test_user_activity_counts_devices_and_countries_and_keeps_the_previous_place(streamed):
    uses, last_place, last_ms, compared = {}, {}, {}, 0
    for e in sorted(streamed["events"], key=lambda e: e["event_ms"]):  # stable: the file's order
        user = e["user_id"]
        if user in last_ms and e["event_ms"] - last_ms[user] > MONTH_MS:  # quiet for 30 days: afresh
            uses = {k: n for k, n in uses.items() if k[0] != user}
            last_place.pop(user, None)
        last_ms[user] = e["event_ms"]
        for column, name in (("device_id", "device_uses"), ("country", "country_uses")):
            uses[(user, column, e[column])] = uses.get((user, column, e[column]), 0) + 1
        place = last_place.get(user)
        want = {"device_uses": uses[(user, "device_id", e["device_id"])],
                "country_uses": uses[(user, "country", e["country"])],
                "prev_located_event_id": place and place["event_id"], "prev_located_country": place and place["country"]}
        assert streamed["activity"][e["event_id"]] == want, e["event_id"]
        if e["latitude"] is not None:
            last_place[user] = e
        compared += 1
    assert compared == len(streamed["events"]) and max(a["country_uses"] for a in streamed["activity"].values()) > 5


def test_the_edges_are_in_the_data(streamed):
    """The cases this module exists for happen: the hour drops the minute 60 back, keeps 59."""
    rows = {r["event_id"]: r for r in streamed["rows"] if r["entity"] == "user"}
    edge = sorted((e for e in streamed["events"] if e["user_id"] == "u-edge"), key=lambda e: e["event_ms"])
    at_60 = next(e for e in edge if e["event_ms"] == T0 + 60 * 60_000)
    at_59_end = next(e for e in edge if e["event_ms"] == T0 + 59 * 60_000 + 59_999)
    assert rows[at_60["event_id"]]["payments_1h"] == 5    # minute 0 left the hour: 1, 59 (x2), 60
    assert rows[at_59_end["event_id"]]["payments_1h"] == 6  # minutes 0, 1, 59 (x2 each)
    gap = sorted((e for e in streamed["events"] if e["user_id"] == "u-gap"), key=lambda e: e["event_ms"])
    assert rows[gap[1]["event_id"]]["payments_1h"] == 1 and rows[gap[1]["event_id"]]["seconds_since_last"] == 11400
    day = sorted((e for e in streamed["events"] if e["user_id"] == "u-day"), key=lambda e: e["event_ms"])
    assert rows[day[1]["event_id"]]["seconds_since_last"] is None and rows[day[1]["event_id"]]["payments_1h"] == 1
    month = sorted((e for e in streamed["events"] if e["user_id"] == "u-month"), key=lambda e: e["event_ms"])
    assert streamed["activity"][month[1]["event_id"]]["country_uses"] == 1
    assert streamed["activity"][month[1]["event_id"]]["prev_located_event_id"] is None
    hot = [r for r in streamed["rows"] if r["entity"] == "merchant" and r["entity_id"] == "m-hot"]
    assert max(r["distinct_users_1h"] for r in hot) > 200


def test_the_sweep_runs(streamed):
    """m-churn remembers more users than the sweep's threshold (HourFeatures.advance: twice the
    distinct users of the hour plus 64), so stale values are dropped while its rows stay equal to
    the batch definition (test_every_row_equals_the_batch_definition)."""
    churn = [r for r in streamed["rows"] if r["entity"] == "merchant" and r["entity_id"] == "m-churn"]
    busiest_hour = max(r["distinct_users_1h"] for r in churn)
    assert CHURN_EVENTS > 2 * busiest_hour + 64, busiest_hour
