-- Products per tenant, per ${grain}: views, carts and checkouts of each product, with its category.
-- Rendered per grain (hour, day) by jobs/analytics.py. Top products and categories are an
-- ORDER BY ... LIMIT over these rows at query time (the serving tables are indexed for it).
--
-- Input   on_time_events with a product_id (sql/analytics/inputs.sql).
--         Example: {"tenant_id": "t007", "product_id": "p00311", "category": "shoes",
--         "event_type": "add_to_cart", "event_time": 2026-12-03 10:15:02.120}
-- Output  analytics.products_${grain}, an upsert on (tenant_id, product_id, window_start).
-- Windows CUMULATE over event time, emitted every ${step_text} while the ${grain} runs.
-- Late    as sales.sql: rows behind the watermark are counted in the quality tables instead.
-- State   per (tenant, product) and slice, dropped when the ${grain} closes.
-- Run     part of the analytics job: vigil submit analytics
INSERT INTO analytics.products_${grain}
SELECT tenant_id,
       product_id,
       MAX(category) AS category,
       window_start,
       window_end,
       CAST(SUM(page_view) AS BIGINT) AS `views`,
       CAST(SUM(add_to_cart) AS BIGINT) AS carts,
       CAST(SUM(checkout) AS BIGINT) AS checkouts,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM TABLE(CUMULATE(TABLE product_events, DESCRIPTOR(row_time), ${step}, ${size}))
GROUP BY tenant_id, product_id, window_start, window_end;
