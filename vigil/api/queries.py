"""The documented analytics queries, each written once, by name.

Every query runs as `vigil_api` in a transaction that first called serving.authenticate(key):
row-level security adds `tenant_id = <the key's tenant>` to every table read, so no query here
names a tenant, and none can reach another tenant's rows whatever its parameters. Values are
always bind parameters (`%(name)s`); the only things composed into the text are identifiers
from the fixed choices below (a grain's table, a product metric), quoted by psycopg.sql.

`render(name, grain=..., metric=...)` gives the SQL to execute; `DOCUMENTED` lists every query
with example parameters (bench/serving_explain.py runs EXPLAIN ANALYZE on each; the README and
docs/benchmarks.md show them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GRAINS = ("minute", "hour", "day")
PRODUCT_GRAINS = ("hour", "day")
PRODUCT_METRICS = ("views", "carts", "checkouts")
TENANT_WIDE = "*"          # merchant_id of a tenant's totals rows


@dataclass(frozen=True)
class Query:
    name: str
    summary: str
    text: str                                   # SQL with {table} / {quality} / {metric} slots
    grains: tuple[str, ...] = ()                # allowed grains (tables), if the text has slots
    tables: dict[str, str] = field(default_factory=dict)   # slot -> table prefix ("sales_")


QUERIES: dict[str, Query] = {}


def _add(query: Query) -> None:
    QUERIES[query.name] = query


_add(Query(
    "revenue", "GMV, orders and average basket per window, of one merchant or the tenant ('*')",
    """SELECT window_start, window_end, orders, gmv_usd, avg_basket_usd, updated_at
  FROM {table}
 WHERE merchant_id = %(merchant_id)s
   AND window_start >= %(start)s AND window_start < %(end)s
 ORDER BY window_start
 LIMIT %(limit)s""", GRAINS, {"table": "sales_"}))

_add(Query(
    "funnel", "Conversion funnel totals over a range: views, carts, checkouts, payment attempts, approved",
    """SELECT count(*) AS windows,
       coalesce(sum(page_views), 0)::bigint AS page_views,
       coalesce(sum(add_to_carts), 0)::bigint AS add_to_carts,
       coalesce(sum(checkouts), 0)::bigint AS checkouts,
       coalesce(sum(payment_attempts), 0)::bigint AS payment_attempts,
       coalesce(sum(payments_approved), 0)::bigint AS payments_approved,
       max(updated_at) AS updated_at
  FROM {table}
 WHERE merchant_id = %(merchant_id)s
   AND window_start >= %(start)s AND window_start < %(end)s""", GRAINS, {"table": "sales_"}))

_add(Query(
    "approval_rate", "Approved and declined payments and the approval rate per window",
    """SELECT window_start, window_end, payments_approved, payments_declined, approval_rate, updated_at
  FROM {table}
 WHERE merchant_id = %(merchant_id)s
   AND window_start >= %(start)s AND window_start < %(end)s
 ORDER BY window_start
 LIMIT %(limit)s""", GRAINS, {"table": "sales_"}))

_add(Query(
    "top_merchants", "Merchants of the tenant ranked by GMV over a range",
    """SELECT merchant_id, sum(orders)::bigint AS orders, sum(gmv_usd) AS gmv_usd
  FROM {table}
 WHERE merchant_id <> '*'
   AND window_start >= %(start)s AND window_start < %(end)s
 GROUP BY merchant_id
 ORDER BY sum(gmv_usd) DESC NULLS LAST, merchant_id
 LIMIT %(limit)s""", GRAINS, {"table": "sales_"}))

_add(Query(
    "rejections", "Rejected records (events.dlq) per window and reason",
    """SELECT window_start, window_end, reason, rejections, updated_at
  FROM {table}
 WHERE window_start >= %(start)s AND window_start < %(end)s
 ORDER BY window_start, reason
 LIMIT %(limit)s""", GRAINS, {"table": "quality_"}))

# Rejected / (clean + rejected) per window: both sides aggregated per window first, then a
# full join, so a window with rejections and no clean event still shows (rate 1).
_add(Query(
    "dlq_rate", "Share of the tenant's records rejected to the dead-letter topic, per window",
    """SELECT coalesce(s.window_start, q.window_start) AS window_start,
       coalesce(s.events, 0) AS clean_events,
       coalesce(q.rejections, 0) AS rejections
  FROM (SELECT window_start, events
          FROM {table}
         WHERE merchant_id = '*'
           AND window_start >= %(start)s AND window_start < %(end)s) s
  FULL JOIN (SELECT window_start, sum(rejections)::bigint AS rejections
               FROM {quality}
              WHERE window_start >= %(start)s AND window_start < %(end)s
              GROUP BY window_start) q
    ON q.window_start = s.window_start
 ORDER BY 1
 LIMIT %(limit)s""", GRAINS, {"table": "sales_", "quality": "quality_"}))

_add(Query(
    "top_products", "Products ranked by views, carts or checkouts over a range",
    """SELECT product_id, max(category) AS category,
       sum(views)::bigint AS views, sum(carts)::bigint AS carts, sum(checkouts)::bigint AS checkouts
  FROM {table}
 WHERE window_start >= %(start)s AND window_start < %(end)s
 GROUP BY product_id
 ORDER BY sum({metric}) DESC NULLS LAST, product_id
 LIMIT %(limit)s""", PRODUCT_GRAINS, {"table": "products_"}))

_add(Query(
    "top_categories", "Categories ranked by views, carts or checkouts over a range",
    """SELECT coalesce(category, '') AS category, count(DISTINCT product_id) AS products,
       sum(views)::bigint AS views, sum(carts)::bigint AS carts, sum(checkouts)::bigint AS checkouts
  FROM {table}
 WHERE window_start >= %(start)s AND window_start < %(end)s
 GROUP BY 1
 ORDER BY sum({metric}) DESC NULLS LAST, 1
 LIMIT %(limit)s""", PRODUCT_GRAINS, {"table": "products_"}))

_add(Query(
    "incidents_by_pattern", "Fraud incidents opened per window and pattern (an incident counts once per pattern it has)",
    """SELECT date_trunc(%(grain)s, i.first_seen) AS window_start, p.pattern, count(*) AS incidents
  FROM analytics.fraud_incidents i
 CROSS JOIN LATERAL unnest(i.patterns) AS p(pattern)
 WHERE i.first_seen >= %(start)s AND i.first_seen < %(end)s
 GROUP BY 1, 2
 ORDER BY 1, 2
 LIMIT %(limit)s"""))

_add(Query(
    "recent_incidents", "The latest fraud incidents (optionally of one status), newest activity first",
    """SELECT incident_id, status, severity, max_score, first_seen, last_seen, alert_count,
       patterns, entities, opened_by, updated_at
  FROM analytics.fraud_incidents
 WHERE (%(status)s::text IS NULL OR status = %(status)s)
   AND last_seen >= %(start)s AND last_seen < %(end)s
 ORDER BY last_seen DESC, incident_id
 LIMIT %(limit)s"""))

_add(Query(
    "alerts_by_pattern", "Fraud alerts per window and pattern",
    """SELECT date_trunc(%(grain)s, event_time) AS window_start, pattern, count(*) AS alerts
  FROM analytics.fraud_alerts
 WHERE event_time >= %(start)s AND event_time < %(end)s
 GROUP BY 1, 2
 ORDER BY 1, 2
 LIMIT %(limit)s"""))

_add(Query(
    "recent_alerts", "The latest fraud alerts (optionally of one pattern), newest first",
    """SELECT alert_id, event_id, pattern, entity_type, entity_id, score, severity, event_time,
       reasons, updated_at
  FROM analytics.fraud_alerts
 WHERE (%(pattern)s::text IS NULL OR pattern = %(pattern)s)
   AND event_time >= %(start)s AND event_time < %(end)s
 ORDER BY event_time DESC, alert_id
 LIMIT %(limit)s"""))

_add(Query(
    "entity_features", "The latest online features of one user, card, device or merchant",
    """SELECT entity_type, entity_id, as_of, as_of_event_id, features, updated_at
  FROM analytics.entity_features
 WHERE entity_type = %(entity_type)s AND entity_id = %(entity_id)s"""))


def render(name: str, grain: str | None = None, metric: str | None = None):
    """The executable SQL (psycopg.sql.Composed) of query `name` for a grain and a metric that
    must be among the query's fixed choices: anything else raises ValueError."""
    from psycopg import sql

    query = QUERIES[name]
    slots = {}
    if query.tables:
        if grain not in query.grains:
            raise ValueError(f"{name}: grain must be one of {', '.join(query.grains)}")
        slots = {slot: sql.Identifier("analytics", prefix + grain) for slot, prefix in query.tables.items()}
    if "{metric}" in query.text:
        if metric not in PRODUCT_METRICS:
            raise ValueError(f"{name}: metric must be one of {', '.join(PRODUCT_METRICS)}")
        slots["metric"] = sql.Identifier(metric)
    return sql.SQL(query.text).format(**slots)


def as_text(name: str, grain: str | None = None, metric: str | None = None) -> str:
    return render(name, grain, metric).as_string(None)
