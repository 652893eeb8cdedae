-- Inputs of the analytics recipes (sql/analytics/*.sql), rendered once by jobs/analytics.py before
-- them, over the catalog's streams (sql/catalog/streams.sql, database vigil.streams).
--
-- Every record of events.clean leaves through exactly one door:
--   on_time_events  usable events at or after the watermark: the windows of sales.sql and
--                   products.sql count them;
--   refused_events  the rest, with a reason, counted per tenant in the quality tables
--                   (quality.sql), never dropped silently:
--                   analytics_late_event    behind the watermark when read: the windows it belongs
--                                           to may have been emitted already. The watermark allows
--                                           ${out_of_orderness_s} s of disorder per partition, as the
--                                           ingest job does, which already sent events later than
--                                           that to events.dlq as late_event; so these are rare
--                                           (a skew between partitions that ingest did not see);
--                   analytics_undecodable   the record could not be decoded (decode_error);
--                   analytics_incomplete    no tenant, event type or event time;
--                   analytics_future_event  event time more than an hour after the broker appended
--                                           it (ingest refuses those; the catalog gives them the
--                                           epoch as row time so they cannot push the watermark).
-- A record on time is never late for a window downstream: windows see the watermark this view
-- saw, or an older one (two-phase aggregation forwards a watermark after the rows before it).
-- Both doors evaluate CURRENT_WATERMARK in operators chained to the source, which see the same
-- watermarks in the same order as the records: an event goes through exactly one. (Flink's
-- mini-batch assigner would break that, so the job keeps it off: jobs/analytics.py.)

CREATE TEMPORARY VIEW classified_events AS
SELECT tenant_id, merchant_id, user_id, event_type, status, amount, currency, product_id, category,
       row_time, CAST(appended_at AS TIMESTAMP(3)) AS appended_at,
       CASE WHEN decode_error IS NOT NULL THEN 'analytics_undecodable'
            WHEN tenant_id IS NULL OR event_type IS NULL OR event_time IS NULL THEN 'analytics_incomplete'
            WHEN row_time <> event_time THEN 'analytics_future_event'
            WHEN row_time < CURRENT_WATERMARK(row_time) THEN 'analytics_late_event'
       END AS refusal
FROM events_clean;

-- on_time_events: the counted events, with the measures the recipes add up (0/1 per kind, amounts
--   in USD exactly: amount * the USD per unit of the currency, vigil/sql_catalog.usd_per_unit_sql).
--   Funnel: page_view -> add_to_cart -> checkout -> payment_attempt -> payment_result approved.
--   An order is an approved payment_result; GMV is what orders paid. A refund counts when requested
--   (its later approval or rejection is not a second refund), a chargeback when opened.
CREATE TEMPORARY VIEW on_time_events AS
SELECT tenant_id, merchant_id, user_id, event_type, product_id, category, row_time,
       IF(event_type = 'page_view', 1, 0) AS page_view,
       IF(event_type = 'add_to_cart', 1, 0) AS add_to_cart,
       IF(event_type = 'checkout', 1, 0) AS checkout,
       IF(event_type = 'payment_attempt', 1, 0) AS payment_attempt,
       IF(event_type = 'payment_result' AND status = 'approved', 1, 0) AS approved,
       IF(event_type = 'payment_result' AND status = 'declined', 1, 0) AS declined,
       CASE WHEN event_type = 'payment_result' AND status = 'approved' THEN amount * ${usd_per_unit} END AS order_usd,
       IF(event_type = 'refund' AND COALESCE(status, 'requested') = 'requested', 1, 0) AS refund,
       CASE WHEN event_type = 'refund' AND COALESCE(status, 'requested') = 'requested'
            THEN amount * ${usd_per_unit} END AS refund_usd,
       IF(event_type = 'chargeback' AND COALESCE(status, 'opened') = 'opened', 1, 0) AS chargeback
FROM classified_events
WHERE refusal IS NULL;

-- rejections: what the quality tables count, by when it was refused: the ingest job's dead
--   letters (events.dlq, reason as written; '?' for a tenant it could not read, 'dlq_undecodable'
--   for a dead letter that is not JSON) and the analytics refusals above (at their append time).
CREATE TEMPORARY VIEW rejections AS
SELECT COALESCE(tenant_id, '?') AS tenant_id,
       COALESCE(reason, IF(decode_error IS NOT NULL, 'dlq_undecodable', 'unknown')) AS reason,
       CAST(rejected_at AS TIMESTAMP(3)) AS rejected_at
FROM events_dlq
UNION ALL
SELECT COALESCE(tenant_id, '?'), refusal, appended_at
FROM classified_events
WHERE refusal IS NOT NULL;

-- product_events: the on-time events that name a product (views, carts, checkouts of it).
CREATE TEMPORARY VIEW product_events AS
SELECT tenant_id, product_id, category, row_time, page_view, add_to_cart, checkout
FROM on_time_events
WHERE product_id IS NOT NULL AND (page_view + add_to_cart + checkout) > 0;
