"""Benchmark: EXPLAIN ANALYZE of every documented analytics query (vigil/api/queries.py) on a
realistic volume of serving rows, and their latency as the API runs them (role vigil_api, the
tenant context set by serving.authenticate, row-level security on).

The rows are generated directly in PostgreSQL with SQL (streaming that many events through the
pipeline would take hours on two cores): the generator's world (50 tenants owning 10,000
merchants, Zipf-skewed merchants per tenant and traffic per merchant, seed 42) at
--events-per-day (default 20M) gives each merchant an expected number of events per minute;
a merchant-minute has a row when it has at least one event (Poisson), and its funnel, payments,
GMV and refunds follow from its events. Minute rows cover --minute-days (1), hour rows
--hour-days (14), day rows --day-days (180); the '*' rows are the sums of the merchants' rows of
the same window. Quality, product, fraud and feature rows are generated alongside. Hour and
day rows are generated on their own, not summed from minute rows: their sizes are right, their
sums do not tie out with the minute rows (nothing here needs them to).

    .venv/bin/python bench/serving_explain.py [--events-per-day 20000000] [--runs 200]
        [--database vigil_bench_serving] [--reuse] [--markdown FILE]

The database is kept (later benchmarks, e.g. the API load test, can reuse it with --reuse);
`vigil serving psql --database vigil_bench_serving` looks inside. Prints, per query: its SQL,
parameters, the plan with actual times and buffers for the largest tenant, and the latency
p50/p95/p99 over --runs executions (authenticate + query, client-side, one connection) for the
largest and a median tenant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from vigil.api import queries  # noqa: E402
from vigil.generator.world import World  # noqa: E402
from vigil.serving import credentials, keys, postgres, provision  # noqa: E402

TENANTS = 50
MERCHANTS = 10_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def merchants_table(conn, events_per_day: float) -> None:
    """merchants(merchant_id, tenant_id, epm): the generator's world, expected events per minute."""
    world = World(42, tenants=TENANTS, merchants=MERCHANTS)
    # World keeps the cumulative Zipf traffic weights (shuffled over merchants); undo the sum.
    cum = world._merchant_cum
    weights = [b - a for a, b in zip([0.0] + cum[:-1], cum)]
    per_minute = events_per_day / 1440
    conn.execute("CREATE TEMP TABLE merchants (merchant_id text, tenant_id text, epm float8)")
    with conn.cursor().copy("COPY merchants FROM STDIN") as copy:
        for merchant, weight in zip(world.merchants, weights):
            copy.write_row((merchant.merchant_id, merchant.tenant_id, per_minute * weight / cum[-1]))


SALES_COLUMNS = """tenant_id, merchant_id, window_start, window_end, events, page_views, add_to_carts,
    checkouts, payment_attempts, payments_approved, payments_declined, approval_rate, orders, gmv_usd,
    avg_basket_usd, refunds, refund_usd, chargebacks, distinct_users, updated_at"""


def sales(conn, table: str, step: str, periods: int, end: datetime, per_period: float, now: datetime) -> int:
    """Merchant rows of one grain (a row when the merchant has events in the window), then the
    tenants' '*' rows as their sums."""
    # Each level draws its own random numbers; PostgreSQL does not flatten subqueries that call
    # volatile functions, so every value is drawn once per row.
    conn.execute(f"""
        INSERT INTO analytics.{table} ({SALES_COLUMNS})
        SELECT tenant_id, merchant_id, w, w + interval '{step}', events,
               round(events * 0.45), round(events * 0.14), round(events * 0.08), attempts,
               approved, attempts - approved,
               CASE WHEN attempts > 0 THEN approved::float8 / attempts END,
               approved, gmv, CASE WHEN approved > 0 THEN round(gmv / approved, 4) END,
               round(approved * 0.03), round(gmv * 0.02, 4), round(approved * 0.005),
               greatest(1, round(events * 0.35)),
               least(w + interval '{step}', %(now)s) + interval '2 seconds'
          FROM (SELECT *, round((approved * (20 + random() * 120))::numeric, 4) AS gmv
                  FROM (SELECT *, round(attempts * (0.85 + random() * 0.1))::bigint AS approved
                          FROM (SELECT tenant_id, merchant_id, w, ev AS events, round(ev * 0.06)::bigint AS attempts
                                  FROM (SELECT m.tenant_id, m.merchant_id, w,
                                               greatest(1, round(m.epm * {per_period}
                                                                 / (1 - exp(-least(m.epm * {per_period}, 700)))
                                                                 * (0.5 + random())))::bigint AS ev,
                                               random() < 1 - exp(-least(m.epm * {per_period}, 700)) AS active
                                          FROM merchants m
                                         CROSS JOIN generate_series(%(end)s - %(periods)s * interval '{step}',
                                                                    %(end)s - interval '{step}',
                                                                    interval '{step}') w) x
                                 WHERE active) a) b) c""", {"end": end, "periods": periods, "now": now})
    conn.execute(f"""
        INSERT INTO analytics.{table} ({SALES_COLUMNS})
        SELECT tenant_id, '*', window_start, window_end, sum(events), sum(page_views), sum(add_to_carts),
               sum(checkouts), sum(payment_attempts), sum(payments_approved), sum(payments_declined),
               sum(payments_approved)::float8 / nullif(sum(payments_approved) + sum(payments_declined), 0),
               sum(orders), sum(gmv_usd), round(sum(gmv_usd) / nullif(sum(orders), 0), 4), sum(refunds),
               sum(refund_usd), sum(chargebacks), round(sum(distinct_users) * 0.9), max(updated_at)
          FROM analytics.{table} GROUP BY tenant_id, window_start, window_end""")
    return conn.execute(f"SELECT count(*) FROM analytics.{table}").fetchone()[0]


def quality(conn, table: str, step: str, periods: int, end: datetime, share: float) -> int:
    reasons = ["bad_magic_byte", "avro_decode_error", "missing_field", "invalid_identifier", "late_event",
               "duplicate", "amount_out_of_range", "invalid_currency", "event_time_too_old", "oversized_payload"]
    conn.execute(f"""
        INSERT INTO analytics.{table} (tenant_id, reason, window_start, window_end, rejections, updated_at)
        SELECT t.tenant_id, r, w, w + interval '{step}', greatest(1, round(t.events * %(share)s * random())),
               w + interval '{step}'
          FROM (SELECT tenant_id, window_start AS w, events FROM analytics.{table.replace('quality', 'sales')}
                 WHERE merchant_id = '*') t
         CROSS JOIN unnest(%(reasons)s::text[]) r
         WHERE random() < 0.4""", {"share": share, "reasons": reasons})
    return conn.execute(f"SELECT count(*) FROM analytics.{table}").fetchone()[0]


def products(conn, table: str, step: str, periods: int, end: datetime, per_tenant: int) -> int:
    """`per_tenant` products per tenant-window (of a catalogue of 5x as many), Zipf-ish views."""
    conn.execute(f"""
        INSERT INTO analytics.{table} (tenant_id, product_id, category, window_start, window_end,
                                       views, carts, checkouts, updated_at)
        SELECT tenant_id, 'p' || lpad(p::text, 5, '0'), 'c' || lpad((p %% 40)::text, 2, '0'), w,
               w + interval '{step}', v, round(v * 0.2), round(v * 0.07), w + interval '{step}'
          FROM (SELECT t.tenant_id, w, p, greatest(1, round(t.scale * 1000.0 / (1 + p %% 97) * random())) AS v
                  FROM (SELECT tenant_id, sum(epm) AS scale FROM merchants GROUP BY tenant_id) t
                 CROSS JOIN generate_series(%(end)s - %(periods)s * interval '{step}', %(end)s - interval '{step}',
                                            interval '{step}') w
                 CROSS JOIN LATERAL (SELECT (random() * {per_tenant * 5})::int AS p
                                       FROM generate_series(1, {per_tenant}) g WHERE w IS NOT NULL) ps) x
        ON CONFLICT DO NOTHING""", {"end": end, "periods": periods})
    return conn.execute(f"SELECT count(*) FROM analytics.{table}").fetchone()[0]


PATTERNS = ["card_testing", "account_takeover", "impossible_travel", "velocity", "shared_device",
            "refund_abuse", "amount_anomaly", "cross_tenant_card", "model_supervised"]


def fraud(conn, end: datetime, days: int, incidents: int, alerts: int, entities: int) -> None:
    # Tenants draw fraud in proportion to their traffic (merchants' expected events).
    conn.execute("""CREATE TEMP TABLE tenant_draw AS
        SELECT tenant_id, sum(epm) OVER (ORDER BY tenant_id) / sum(epm) OVER () AS upto
          FROM (SELECT tenant_id, sum(epm) AS epm FROM merchants GROUP BY tenant_id) t""")
    conn.execute("""
        INSERT INTO analytics.fraud_alerts (alert_id, tenant_id, event_id, pattern, entity_type, entity_id, score,
                                            severity, event_time, reasons, updated_at)
        SELECT 'al' || g, (SELECT tenant_id FROM tenant_draw WHERE upto >= r ORDER BY upto LIMIT 1),
               'ev' || g, (%(patterns)s::text[])[1 + (g %% 9)], 'card', 'card' || (g %% 50000),
               0.7 + random() * 0.3, CASE WHEN g %% 3 = 0 THEN 'high' ELSE 'medium' END, at,
               '{"reason_codes": ["x"], "evidence": {"count": 5}}', at + interval '3 seconds'
          FROM (SELECT g, random() AS r, %(end)s - random() * %(days)s * interval '1 day' AS at
                  FROM generate_series(1, %(alerts)s) g) a""",
                 {"patterns": PATTERNS, "end": end, "days": days, "alerts": alerts})
    conn.execute("""
        INSERT INTO analytics.fraud_incidents (incident_id, tenant_id, status, severity, max_score, first_seen,
                                               last_seen, alert_count, patterns, entities, opened_by, updated_at)
        SELECT 'inc' || g, (SELECT tenant_id FROM tenant_draw WHERE upto >= r ORDER BY upto LIMIT 1),
               CASE WHEN at < %(end)s - interval '1 hour' THEN 'closed' ELSE 'open' END, 'high', 0.9, at,
               at + random() * interval '50 minutes', 1 + (g %% 7),
               ARRAY[(%(patterns)s::text[])[1 + (g %% 9)]] || CASE WHEN g %% 4 = 0 THEN
                   ARRAY[(%(patterns)s::text[])[1 + ((g / 4) %% 9)]] ELSE '{}' END,
               ARRAY['card:card' || (g %% 50000), 'user:u' || g], (%(patterns)s::text[])[1 + (g %% 9)], at
          FROM (SELECT g, random() AS r, %(end)s - random() * %(days)s * interval '1 day' AS at
                  FROM generate_series(1, %(incidents)s) g) i""",
                 {"patterns": PATTERNS, "end": end, "days": days, "incidents": incidents})
    conn.execute("""
        INSERT INTO analytics.entity_features (tenant_id, entity_type, entity_id, as_of, as_of_event_id, features,
                                               updated_at)
        SELECT (SELECT tenant_id FROM tenant_draw WHERE upto >= r ORDER BY upto LIMIT 1),
               (ARRAY['user', 'card', 'device', 'merchant'])[1 + g %% 4], 'e' || g, %(end)s, 'ev' || g,
               jsonb_build_object('events_1h', g %% 40, 'payments_1h', g %% 7, 'amount_usd_1h', (g %% 900) * 1.5,
                                  'distinct_devices_1h', 1 + g %% 3, 'seconds_since_last', g %% 3600),
               %(end)s
          FROM (SELECT g, random() AS r FROM generate_series(1, %(entities)s) g) e
        ON CONFLICT DO NOTHING""", {"end": end, "entities": entities})


def current_end(end: datetime, step: str) -> datetime:
    """The end of the window that holds `end` - 1 minute (the newest generated minute)."""
    if step == "1 hour":
        return end.replace(minute=0) + timedelta(hours=1) if end.minute else end
    if step == "1 day":
        return end.replace(hour=0, minute=0) + timedelta(days=1) if (end.hour, end.minute) != (0, 0) else end
    return end


def generate(dsn: str, args, end: datetime) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(0.42)")
        merchants_table(conn, args.events_per_day)
        started = time.monotonic()
        for table, step, periods, per_period in (("sales_minute", "1 minute", args.minute_days * 1440, 1),
                                                 ("sales_hour", "1 hour", args.hour_days * 24, 60),
                                                 ("sales_day", "1 day", args.day_days, 1440)):
            # Windows aligned as Flink's are (an hour window starts on the hour, a day at 00:00
            # UTC), the current hour and day included, as the cumulating jobs serve them.
            aligned = current_end(end, step)
            rows = sales(conn, table, step, periods, aligned, per_period, end)
            log(f"{table}: {rows:,} rows ({time.monotonic() - started:.0f} s)")
        for table, step, periods, share in (("quality_minute", "1 minute", args.minute_days * 1440, 0.004),
                                            ("quality_hour", "1 hour", args.hour_days * 24, 0.004),
                                            ("quality_day", "1 day", args.day_days, 0.004)):
            log(f"{table}: {quality(conn, table, step, periods, end, share):,} rows")
        log(f"products_hour: {products(conn, 'products_hour', '1 hour', args.hour_days * 24, current_end(end, '1 hour'), 100):,} rows")
        log(f"products_day: {products(conn, 'products_day', '1 day', min(args.day_days, 90), current_end(end, '1 day'), 300):,} rows")
        # 1M alerts and 200k incidents over 14 days at 20M events a day; features of 500k entities
        alerts = int(args.events_per_day * args.hour_days / 280)
        entities = int(min(500_000, args.events_per_day / 40))
        fraud(conn, end, args.hour_days, incidents=alerts // 5, alerts=alerts, entities=entities)
        log(f"fraud_incidents {alerts // 5:,}, fraud_alerts {alerts:,}, entity_features <= {entities:,} rows")
        events = conn.execute("SELECT sum(events) FROM analytics.sales_minute WHERE merchant_id <> '*'").fetchone()[0]
        # What autovacuum does in steady state (V006 runs it at 2-5 % of changes): statistics, and
        # the visibility map that lets index-only scans skip the heap.
        log(f"minute rows represent {events:,} events; VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CREATE TABLE public.bench_meta AS SELECT %s::timestamp AS generated_end, %s::float8 AS events_per_day",
                     [end, args.events_per_day])


def examples(end: datetime, tenant_merchant: str, entity: tuple[str, str]) -> list[tuple[str, str | None, str | None, dict]]:
    """(query, grain, metric, parameters) as a dashboard asks: the current hour / day / month."""
    hour, day, month = end - timedelta(hours=1), end - timedelta(days=1), end - timedelta(days=30)
    return [
        ("revenue", "minute", None, {"merchant_id": "*", "start": hour, "end": end, "limit": 1000}),
        ("revenue", "minute", None, {"merchant_id": tenant_merchant, "start": hour, "end": end, "limit": 1000}),
        ("revenue", "hour", None, {"merchant_id": "*", "start": day, "end": end, "limit": 1000}),
        ("revenue", "day", None, {"merchant_id": "*", "start": month, "end": end, "limit": 1000}),
        ("funnel", "hour", None, {"merchant_id": "*", "start": day, "end": end}),
        ("approval_rate", "minute", None, {"merchant_id": "*", "start": hour, "end": end, "limit": 1000}),
        # Ranking merchants reads one row per merchant and window: over the last 24 hours of
        # hours, 24 rows per merchant; "today" from the day table, one (the cumulating day's).
        ("top_merchants", "hour", None, {"start": day, "end": end, "limit": 10}),
        ("top_merchants", "day", None, {"start": end.replace(hour=0, minute=0), "end": end, "limit": 10}),
        ("rejections", "minute", None, {"start": hour, "end": end, "limit": 1000}),
        ("dlq_rate", "hour", None, {"start": day, "end": end, "limit": 1000}),
        ("top_products", "day", "views", {"start": month, "end": end, "limit": 10}),
        ("top_categories", "hour", "checkouts", {"start": day, "end": end, "limit": 10}),
        ("incidents_by_pattern", None, None, {"grain": "hour", "start": day, "end": end, "limit": 1000}),
        ("recent_incidents", None, None, {"status": None, "start": month, "end": end, "limit": 50}),
        ("alerts_by_pattern", None, None, {"grain": "hour", "start": day, "end": end, "limit": 1000}),
        ("recent_alerts", None, None, {"pattern": None, "start": month, "end": end, "limit": 50}),
        ("entity_features", None, None, {"entity_type": entity[0], "entity_id": entity[1]}),
    ]


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} d"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(api_dsn: str, key: str, sql, params: dict, runs: int) -> tuple[list[float], int]:
    timings = []
    with psycopg.connect(api_dsn, autocommit=True) as conn:
        for i in range(runs + 5):
            started = time.perf_counter()
            with conn.transaction():
                conn.execute("SELECT serving.authenticate(%s)", [key])
                rows = conn.execute(sql, params).fetchall()
            if i >= 5:                      # the first runs warm the cache and prepare
                timings.append((time.perf_counter() - started) * 1000)
    return timings, len(rows)


def explain(api_dsn: str, key: str, sql, params: dict) -> str:
    from psycopg import sql as pgsql

    with psycopg.connect(api_dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT serving.authenticate(%s)", [key])
            plan = conn.execute(pgsql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + sql, params).fetchall()
    return "\n".join(r[0] for r in plan)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events-per-day", type=float, default=20_000_000)
    parser.add_argument("--minute-days", type=int, default=1)
    parser.add_argument("--hour-days", type=int, default=14)
    parser.add_argument("--day-days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--database", default="vigil_bench_serving")
    parser.add_argument("--reuse", action="store_true", help="keep the database's rows if it has them")
    parser.add_argument("--markdown", help="also write the report to this file")
    args = parser.parse_args()

    settings = postgres.PgSettings()
    postgres.ensure_running(settings, log=lambda *_: None)
    admin = postgres.dsn(credentials.ADMIN, args.database)
    reuse = False
    if args.reuse and provision.create_database(args.database, settings) is False:
        with psycopg.connect(admin) as conn:
            reuse = conn.execute("SELECT to_regclass('public.bench_meta') IS NOT NULL").fetchone()[0]
    if reuse:
        with psycopg.connect(admin) as conn:
            end = conn.execute("SELECT generated_end FROM public.bench_meta").fetchone()[0]
        log(f"reusing {args.database} (rows up to {end:%Y-%m-%d %H:%M} UTC)")
    else:
        provision.drop_database(args.database, settings)
        provision.prepare_database(args.database, settings, log=lambda *_: None)
        end = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0)
        started = time.monotonic()
        generate(admin, args, end)
        log(f"generated in {time.monotonic() - started:.0f} s")

    with psycopg.connect(admin) as conn:
        tenants = conn.execute("""
            SELECT tenant_id, count(*) FROM analytics.sales_hour WHERE merchant_id <> '*'
             GROUP BY tenant_id ORDER BY count(*) DESC""").fetchall()
        biggest, median = tenants[0][0], tenants[len(tenants) // 2][0]
        merchant = conn.execute("""SELECT merchant_id FROM analytics.sales_minute WHERE tenant_id = %s
                                    AND merchant_id <> '*' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""",
                                [biggest]).fetchone()[0]
        entity = conn.execute("SELECT entity_type, entity_id FROM analytics.entity_features WHERE tenant_id = %s"
                              " LIMIT 1", [biggest]).fetchone()
        sizes = conn.execute("""
            SELECT c.relname, c.reltuples::bigint,
                   pg_size_pretty(coalesce((SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t),
                                         pg_total_relation_size(c.oid)))
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'analytics' AND c.relkind IN ('p', 'r') AND c.relispartition = false
             ORDER BY 1""").fetchall()
        part_rows = dict(conn.execute("""
            SELECT p.relname, sum(c.reltuples)::bigint FROM pg_inherits i
              JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             GROUP BY 1""").fetchall())
        events = conn.execute("SELECT sum(events) FROM analytics.sales_minute WHERE merchant_id <> '*'").fetchone()[0]
    key_big = keys.create(admin, biggest, "bench")[1]
    key_median = keys.create(admin, median, "bench")[1]
    api_dsn = postgres.dsn(credentials.API, args.database)

    load_before = os.getloadavg()
    out: list[str] = []
    out.append(f"Data (generated up to {end:%Y-%m-%d %H:%M} UTC; minute rows represent {events:,} events):\n")
    out.append("| table | rows | size with indexes |\n| --- | ---: | ---: |")
    for name, tuples, size in sizes:
        out.append(f"| {name} | {part_rows.get(name, tuples):,} | {size} |")
    out.append(f"\nLargest tenant {biggest}, median tenant {median}; latency over {args.runs} runs each"
               " (authenticate + query in one transaction, one connection, client-side ms):\n")
    out.append("| query | grain | range | rows | p50 largest | p95 largest | p99 largest | p50 median | p99 median |")
    out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    plans: list[str] = []
    for name, grain, metric, params in examples(end, merchant, entity):
        sql = queries.render(name, grain, metric)
        timings, rows = measure(api_dsn, key_big, sql, params, args.runs)
        timings_median, _ = measure(api_dsn, key_median, sql, params, args.runs)
        span = _span(params["end"] - params["start"]) if "start" in params else None
        label = f"{name}" + (" (one merchant)" if params.get("merchant_id") not in (None, "*") else "")
        out.append(f"| {label} | {grain or params.get('grain', '-')} | {span or '-'} | {rows} | "
                   f"{percentile(timings, 0.5):.2f} | {percentile(timings, 0.95):.2f} | {percentile(timings, 0.99):.2f} | "
                   f"{percentile(timings_median, 0.5):.2f} | {percentile(timings_median, 0.99):.2f} |")
        shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}
        plans.append(f"#### {label}, {grain or params.get('grain', '')}\n\n```sql\n{queries.as_text(name, grain, metric)}\n"
                     f"-- {shown}\n```\n```\n{explain(api_dsn, key_big, sql, params)}\n```\n")
        log(f"{label} {grain}: p50 {statistics.median(timings):.2f} ms")
    load_after = os.getloadavg()
    out.append(f"\nLoad average (1, 5, 15 min) before the runs {', '.join(f'{x:.1f}' for x in load_before)},"
               f" after {', '.join(f'{x:.1f}' for x in load_after)} ({os.cpu_count()} cores).")
    report = "\n".join(out) + "\n\nPlans for the largest tenant (EXPLAIN (ANALYZE, BUFFERS), as vigil_api):\n\n" + "\n".join(plans)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
