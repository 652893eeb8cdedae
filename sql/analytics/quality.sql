-- Data quality per tenant and reason, per ${grain}: how many records were refused, and why.
-- Rendered per grain (minute, hour, day) by jobs/analytics.py.
--
-- Input   rejections (sql/analytics/inputs.sql): the ingest job's dead letters (events.dlq) and
--         the events.clean records the analytics windows could not count (late, undecodable...).
--         Example: {"tenant_id": "t007", "reason": "invalid_currency", "rejected_at": 2026-12-03 10:15:03.004}
-- Output  analytics.quality_${grain}, an upsert on (tenant_id, reason, window_start); tenant '?'
--         when the rejected record named none. DLQ rate = rejections / (rejections + events of
--         sales_${grain} with merchant '*'), by window.
-- Time    when the record was refused (its append time), not its event time: refused records
--         include unreadable ones and events with impossible times. Append times only move
--         forward, so nothing here is ever late, and the ${grain} row is updated as rejections
--         arrive (every mini-batch).
-- State   one count per (tenant, reason, ${grain}), a regular aggregation: expired after
--         table.exec.state.ttl (AnalyticsConfig.quality_ttl, processing time), which is safe
--         because a bucket stops receiving rows once its append-time range is over; a job stopped
--         for longer than the TTL restarts the counts of the buckets it was in the middle of.
-- Run     part of the analytics job: vigil submit analytics
INSERT INTO analytics.quality_${grain}
SELECT tenant_id,
       reason,
       window_start,
       window_start + INTERVAL '1' ${unit} AS window_end,
       COUNT(*) AS rejections,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM (SELECT tenant_id, reason, FLOOR(rejected_at TO ${unit}) AS window_start FROM rejections)
GROUP BY tenant_id, reason, window_start;
