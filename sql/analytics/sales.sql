-- Sales per tenant and merchant, per ${grain}: the funnel, payments, orders, GMV in US dollars,
-- average basket, approval rate, refunds, chargebacks and distinct users. Rendered once per grain
-- (minute, hour, day) by jobs/analytics.py, all in one job with the other recipes.
--
-- Input   on_time_events (sql/analytics/inputs.sql over vigil.streams.events_clean = events.clean).
--         Example: {"tenant_id": "t007", "merchant_id": "m0042", "user_id": "u0001234",
--         "event_type": "payment_result", "status": "approved", "amount": 59.9000, "currency": "EUR",
--         "event_time": 2026-12-03 10:15:02.120} -> approved 1, order_usd 65.108695652...
-- Output  analytics.sales_${grain} in PostgreSQL (sql/catalog/serving.sql), an upsert on
--         (tenant_id, merchant_id, window_start). merchant_id '*' is the tenant's total (a grouping
--         set: distinct users are not the sum of the merchants').
-- Windows CUMULATE over event time: the ${grain} [window_start, window_end) is emitted every
--         ${step_text} of event time while it runs (the row grows until the ${grain} is over),
--         so the current ${grain} is served while it runs. Each emission rewrites the rows of
--         the keys active in the ${grain} so far: see docs/adr/0011 for what that costs.
-- Late    rows behind the watermark (${out_of_orderness_s} s of disorder) never reach the windows:
--         inputs.sql counts them as analytics_late_event in the quality tables.
-- State   per key and slice of ${step_text}, dropped when the ${grain} closes; distinct users as
--         a set per key and ${grain}.
-- Hot     a busy merchant or tenant is one key: the job aggregates locally before the shuffle
--         (two-phase, jobs/analytics.py hot_key_options); distinct counts are not split into
--         buckets (with CUMULATE that multiplies what each step re-emits: ADR 0011).
-- Run     vigil submit analytics | vigil run analytics --bounded (README, "Flink SQL for analysts")
INSERT INTO analytics.sales_${grain}
SELECT tenant_id,
       COALESCE(merchant_id, '*') AS merchant_id,
       window_start,
       window_end,
       COUNT(*) AS events,
       CAST(SUM(page_view) AS BIGINT) AS page_views,
       CAST(SUM(add_to_cart) AS BIGINT) AS add_to_carts,
       CAST(SUM(checkout) AS BIGINT) AS checkouts,
       CAST(SUM(payment_attempt) AS BIGINT) AS payment_attempts,
       CAST(SUM(approved) AS BIGINT) AS payments_approved,
       CAST(SUM(declined) AS BIGINT) AS payments_declined,
       CAST(SUM(approved) AS DOUBLE) / NULLIF(SUM(approved) + SUM(declined), 0) AS approval_rate,
       CAST(SUM(approved) AS BIGINT) AS orders,
       CAST(COALESCE(SUM(order_usd), 0) AS DECIMAL(20, 4)) AS gmv_usd,
       CAST(SUM(order_usd) / NULLIF(SUM(approved), 0) AS DECIMAL(20, 4)) AS avg_basket_usd,
       CAST(SUM(refund) AS BIGINT) AS refunds,
       CAST(COALESCE(SUM(refund_usd), 0) AS DECIMAL(20, 4)) AS refund_usd,
       CAST(SUM(chargeback) AS BIGINT) AS chargebacks,
       COUNT(DISTINCT user_id) AS distinct_users,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM TABLE(CUMULATE(TABLE on_time_events, DESCRIPTOR(row_time), ${step}, ${size}))
GROUP BY window_start, window_end, GROUPING SETS ((tenant_id, merchant_id), (tenant_id));
