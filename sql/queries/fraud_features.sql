-- Real-time features of one entity type (${entity_type}: events keyed by ${entity_column}), rendered
-- once per entity type (user, card, device, merchant) by jobs/fraud_detection.py, in event time;
-- and once more for users in processing time (proc_time) for the low-latency path. Definitions,
-- and the batch recomputation the tests compare against: udfs/fraud_features.py.
-- Input: keyed_events (fraud_patterns.sql), every event of the entity, in event time.
-- Output: one row per event: the entity's features as of that event (the event included).
-- State: the previous event per entity (unbounded OVER: one row per entity, expires with
-- table.exec.state.ttl) and the last hour of events per entity (bounded OVER).
-- Flink wants every OVER of one SELECT to be the same window, so the previous-event view and
-- the 1-hour view are stacked; the explicit column lists keep the planner's generated names apart.
-- Sums of amounts are fixed-point (DECIMAL(38, 12)), which adds and retracts exactly, in any order.
-- Flink retracts the rows leaving the hour in its state map's iteration order, not by time
-- (RowTimeRangeBoundedPrecedingFunction), and that order is not the same in every run: DOUBLE sums
-- differed in their last bits between two runs over the same events, and so did the supervised
-- model that learns from these features (a replay must give identical scores).

CREATE TEMPORARY VIEW features_prev_${view_name} AS
SELECT tenant_id, entity_id, event_id, event_time, ${time_select}event_type, user_id, device_id,
       card_fingerprint, ip, country, amount_usd, appended_at,
       TIMESTAMPDIFF(SECOND, prev_event_time, event_time) AS seconds_since_last,
       ${haversine_km} AS km_since_last
FROM (
  SELECT tenant_id, ${entity_column} AS entity_id, event_id, event_time, ${time_select}event_type, user_id, device_id,
         card_fingerprint, ip, country, amount_usd, appended_at, latitude, longitude,
         LAG(event_time) OVER w AS prev_event_time,
         LAG(latitude) OVER w AS prev_latitude,
         LAG(longitude) OVER w AS prev_longitude
  FROM ${source_view}
  WHERE ${entity_column} IS NOT NULL
  WINDOW w AS (PARTITION BY tenant_id, ${entity_column} ORDER BY ${time_column})
);

CREATE TEMPORARY VIEW features_${view_name} AS
SELECT tenant_id, '${entity_type}' AS entity_type, entity_id, event_id, event_time, event_type,
       appended_at, amount_usd, events_1h, payments_1h, amount_usd_1h, distinct_users_1h, distinct_devices_1h,
       distinct_cards_1h, distinct_ips_1h, distinct_countries_1h, seconds_since_last,
       km_since_last * 3600.0 / GREATEST(seconds_since_last, 1) AS km_per_hour_since_last,
       CASE WHEN event_type = 'payment_attempt' AND payments_1h >= 2
            THEN (LN(GREATEST(amount_usd, 0.01)) - log_sum / payments_1h)
                 / GREATEST(SQRT(GREATEST(log_sq_sum / payments_1h - (log_sum / payments_1h) * (log_sum / payments_1h), 0.0)), 0.5)
       END AS amount_z_1h
FROM (
  SELECT tenant_id, entity_id, event_id, event_time, ${time_select}event_type, appended_at, amount_usd, seconds_since_last,
         km_since_last,
         COUNT(*) OVER h AS events_1h,
         SUM(CASE WHEN event_type = 'payment_attempt' THEN 1 ELSE 0 END) OVER h AS payments_1h,
         CAST(SUM(CAST(CASE WHEN event_type = 'payment_attempt' THEN COALESCE(amount_usd, 0.0) ELSE 0.0 END
                       AS DECIMAL(38, 12))) OVER h AS DOUBLE) AS amount_usd_1h,
         CAST(SUM(CAST(CASE WHEN event_type = 'payment_attempt' THEN LN(GREATEST(COALESCE(amount_usd, 0.0), 0.01)) ELSE 0.0 END
                       AS DECIMAL(38, 12))) OVER h AS DOUBLE) AS log_sum,
         CAST(SUM(CAST(CASE WHEN event_type = 'payment_attempt' THEN POWER(LN(GREATEST(COALESCE(amount_usd, 0.0), 0.01)), 2) ELSE 0.0 END
                       AS DECIMAL(38, 12))) OVER h AS DOUBLE) AS log_sq_sum,
         COUNT(DISTINCT user_id) OVER h AS distinct_users_1h,
         COUNT(DISTINCT device_id) OVER h AS distinct_devices_1h,
         COUNT(DISTINCT card_fingerprint) OVER h AS distinct_cards_1h,
         COUNT(DISTINCT ip) OVER h AS distinct_ips_1h,
         COUNT(DISTINCT country) OVER h AS distinct_countries_1h
  FROM features_prev_${view_name}
  WINDOW h AS (PARTITION BY tenant_id, entity_id ORDER BY ${time_column}
               RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW)
);
