-- Products per tenant, per ${grain}: views, carts and checkouts of each product, with its category.
-- Rendered per grain (hour, day) by jobs/analytics.py. Top products and categories are an
-- ORDER BY ... LIMIT over these rows at query time (the serving tables are indexed for it).
--
-- Input   on_time_events with a product_id (sql/analytics/inputs.sql).
--         Example: {"tenant_id": "t007", "product_id": "p00311", "category": "shoes",
--         "event_type": "add_to_cart", "event_time": 2026-12-03 10:15:02.120}
-- Output  analytics.products_${grain}, an upsert on (tenant_id, product_id, window_start).
-- Updates A regular aggregation per (tenant, product, ${grain}), not a CUMULATE window: a catalog
--         has far more products than a tenant has merchants, and a CUMULATE window re-emits
--         every key it holds at every step (by the end of a day, every product seen that day,
--         every minute), in bursts at the step ends that held the whole job back (ADR 0011).
--         Here each event updates its row, and the JDBC sink's buffer keeps the last update per
--         key: each flush writes the products that changed since the last one, no others.
-- Late    only on-time events are counted (inputs.sql), so a ${grain} row stops changing once
--         the watermark has passed its end; later events go to the quality tables as for sales.
-- State   one row per (tenant, product, ${grain}), expired after table.exec.state.ttl
--         (AnalyticsConfig.quality_ttl, processing time, longer than a day plus lateness); as
--         for the quality counts, a job stopped for longer than the TTL restarts the counts of
--         the ${grain}s it was in the middle of.
-- Run     part of the analytics job: vigil submit analytics
INSERT INTO analytics.products_${grain}
SELECT tenant_id,
       product_id,
       MAX(category) AS category,
       window_start,
       window_start + INTERVAL '1' ${unit} AS window_end,
       CAST(SUM(page_view) AS BIGINT) AS `views`,
       CAST(SUM(add_to_cart) AS BIGINT) AS carts,
       CAST(SUM(checkout) AS BIGINT) AS checkouts,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM (SELECT tenant_id, product_id, category, page_view, add_to_cart, checkout,
             CAST(FLOOR(row_time TO ${unit}) AS TIMESTAMP(3)) AS window_start
        FROM product_events)
GROUP BY tenant_id, product_id, window_start;
