-- Real-time features of one entity type, rendered
-- once per entity type (user, card, device, merchant) by jobs/fraud_detection.py, in event time;
-- and once more for users in processing time (proc_time) for the low-latency path. Definitions,
-- and the batch recomputation the tests compare against: udfs/fraud_features.py.
-- Input: hour_rows, every event of the entity with its hour (below).
-- ${passed_columns}: columns of hour_rows passed through as they are (', is_late' for the
-- low-latency path, whose rows include the events the exact path dead-letters as late).
-- Output: one row per event: the entity's features as of that event (the event included).
-- How: hour_rows (jobs/fraud_sql.py) gives the entity's events with `h`, its hour as of each
-- event: per-minute counters and exact sums for the current minute and the 59 before it, and the
-- minute each distinct user/device/card/ip/country was last seen (java/vigil-formats HourFeatures). For cards, devices
-- and merchants, hour_features_process (HourFeaturesProcess) in event-time order; for users, the
-- same fields of user_activity (fraud_events.sql); for the low-latency path, hour_features in an
-- unbounded ROWS OVER in arrival order (jobs/fraud_sql.py). Cost per event is constant and state
-- is bounded by the entity's distinct values in an hour, whatever its traffic: a 1-hour RANGE
-- window kept every row and walked them all on each timer, which a busy merchant cannot afford
-- (ADR 0007).
-- State: per (tenant, entity), bounded by event time in the exact path (the hour goes an hour after
-- the entity's newest event, its previous event a day after it); the low-latency path's per user
-- expires with table.exec.state.ttl (processing time, as that path is).

CREATE TEMPORARY VIEW features_${view_name} AS
SELECT tenant_id, '${entity_type}' AS entity_type, entity_id, event_id, event_time, event_type,
       appended_at, amount_usd, device_id, card_fingerprint${passed_columns}, events_1h, payments_1h, amount_usd_1h, distinct_users_1h, distinct_devices_1h,
       distinct_cards_1h, distinct_ips_1h, distinct_countries_1h, seconds_since_last,
       ${haversine_km} * 3600.0 / GREATEST(seconds_since_last, 1) AS km_per_hour_since_last,
       CASE WHEN event_type = 'payment_attempt' AND payments_1h >= 2
            THEN (LN(GREATEST(amount_usd, 0.01)) - log_sum / payments_1h)
                 / GREATEST(SQRT(GREATEST(log_sq_sum / payments_1h - (log_sum / payments_1h) * (log_sum / payments_1h), 0.0)), 0.5)
       END AS amount_z_1h
FROM (
  SELECT tenant_id, entity_id, event_id, event_time, event_type, appended_at, amount_usd, latitude, longitude,
         device_id, card_fingerprint${passed_columns}, h.events_1h AS events_1h, h.payments_1h AS payments_1h, h.amount_usd_1h AS amount_usd_1h,
         h.log_usd_sum AS log_sum, h.log_usd_sq_sum AS log_sq_sum,
         h.distinct_users_1h AS distinct_users_1h, h.distinct_devices_1h AS distinct_devices_1h,
         h.distinct_cards_1h AS distinct_cards_1h, h.distinct_ips_1h AS distinct_ips_1h,
         h.distinct_countries_1h AS distinct_countries_1h,
         -- a late arrival on the low-latency path can be older than the newest event: 0, not negative
         CASE WHEN h.prev_event_time > event_time THEN 0
              ELSE TIMESTAMPDIFF(SECOND, h.prev_event_time, event_time) END AS seconds_since_last,
         h.prev_latitude AS prev_latitude, h.prev_longitude AS prev_longitude
  FROM ${hour_rows}
);
