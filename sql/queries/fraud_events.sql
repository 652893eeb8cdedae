-- The fraud job's views of each event (jobs/fraud_detection.py), before any rule or pattern.
-- Input: clean_events (fraud_inputs.sql). Outputs:
--   keyed_events_query: every usable event with its amount in USD and the shard of the default
--     rules it reads (default_key);
--   user_activity_query: the same rows with `a`, everything kept per user as of the event. The job
--     plans it once and registers it as user_activity, and keyed_events as user_activity without
--     `a` (jobs/fraud_detection.plan_once): every later part reads that one stream, so the user's
--     aggregate is computed once per event (ADR 0007).
-- State: one UserActivity accumulator per (tenant, user), expires with table.exec.state.ttl.
-- Lateness: user_activity runs in event time; rows behind the watermark are dropped by Flink's
-- OVER operator (the watermark bound covers the disorder ingest lets through, ADR 0004).

CREATE TEMPORARY VIEW keyed_events_query AS
-- default_key: the shard of the "*" rules this event reads (fraud_inputs.sql: default_rules), from
-- the millisecond of its event time (uniform, and the same on every replay).
SELECT *, '*' || CAST(MOD(EXTRACT(SECOND FROM event_time) * 1000 + EXTRACT(MILLISECOND FROM event_time),
                          ${default_rule_shards}) AS STRING) AS default_key,
       CAST(amount AS DOUBLE) / ${usd_rate} AS amount_usd
FROM clean_events;

-- Everything kept per user, as of each event, in one aggregate (java/vigil-formats UserActivity):
-- the hour features (features_user, fraud_features.sql), how many times the user had used the
-- event's device and country (account takeover's "new device or country"), and the previous
-- located event (impossible travel). One keyed operator instead of four over every event.
-- ROWS: events of one user at the same millisecond count in the order they were read (one user's
-- events share a partition of events.clean, so a replay reads them in the same order).
CREATE TEMPORARY VIEW user_activity_query AS
SELECT tenant_id, merchant_id, user_id, event_id, event_time, event_type, status, device_id, ip, card_fingerprint,
       country, latitude, longitude, amount_usd, appended_at, default_key,
       user_activity(event_time, event_type, amount_usd, user_id, device_id, card_fingerprint, ip, country,
                     latitude, longitude, event_id)
         OVER (PARTITION BY tenant_id, user_id ORDER BY event_time
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS a
FROM keyed_events_query;
