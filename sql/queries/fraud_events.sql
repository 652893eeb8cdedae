-- The fraud job's views of each event (jobs/fraud_detection.py), before any rule or pattern.
-- Input: clean_events (fraud_inputs.sql). Outputs:
--   keyed_events_query: every usable event with its amount in USD and the shard of the default
--     rules it reads (default_key);
--   user_activity_query: the same rows with `a`, everything kept per user as of the event. The job
--     plans it once and registers it as user_activity, and keyed_events as user_activity without
--     `a` (jobs/fraud_detection.plan_once): every later part reads that one stream, so the user's
--     aggregate is computed once per event (ADR 0007).
-- Lateness: user_activity runs in event time (the watermark bound covers the disorder ingest lets
-- through, ADR 0004); events that arrive behind the watermark (is_late) do not enter it.

CREATE TEMPORARY VIEW keyed_events_query AS
-- default_key: the shard of the "*" rules this event reads (fraud_inputs.sql: default_rules), from
-- the millisecond of its event time (uniform, and the same on every replay).
SELECT *, '*' || CAST(MOD(EXTRACT(SECOND FROM event_time) * 1000 + EXTRACT(MILLISECOND FROM event_time),
                          ${default_rule_shards}) AS STRING) AS default_key,
       CAST(amount AS DOUBLE) / ${usd_rate} AS amount_usd
FROM clean_events;

-- Everything kept per user, as of each event, in one keyed operator (java/vigil-formats
-- UserActivityProcess, a process table function over UserActivity): the hour features
-- (features_user, fraud_features.sql), how many times the user had used the event's device and
-- country (account takeover's "new device or country"), and the previous located event
-- (impossible travel). One keyed operator instead of four over every event.
-- Order: the user's rows wait for the watermark and are read in event-time order; rows of one
-- millisecond in the order they arrived (one user's events share a partition of events.clean, so
-- a replay reads them in the same order).
-- State: per (tenant, user), bounded by event time: the hour goes an hour after the user's newest
-- event, the rest (devices, countries, last place) 30 days after it (UserActivity.RETAIN_MS).
-- Only the columns user_activity_process reads: a PTF converts every column of its input row.
-- Only events on time: every event-time operator of the exact path reads this view's output, and
-- a late event is dead-lettered instead (fraud_inputs.sql; its payment scored, decision_inputs_sql).
CREATE TEMPORARY VIEW user_events AS
SELECT tenant_id, user_id, event_time, merchant_id, event_id, event_type, status, device_id, ip, card_fingerprint,
       country, latitude, longitude, amount_usd, appended_at, default_key
FROM keyed_events_query
WHERE NOT is_late;

CREATE TEMPORARY VIEW user_activity_query AS
SELECT tenant_id, merchant_id, user_id, event_id, rowtime AS event_time, event_type, status, device_id, ip,
       card_fingerprint, country, latitude, longitude, amount_usd, appended_at, default_key, a
FROM user_activity_process(input => TABLE user_events PARTITION BY (tenant_id, user_id),
                           on_time => DESCRIPTOR(event_time), uid => 'user-activity');
