-- Fraud patterns of jobs/fraud_detection.py, all in Flink SQL (JVM): each view emits one row per
-- detection in the common alert shape (tenant_id, pattern, entity_type, entity_id, event_id,
-- event_time, score, evidence, rules_effective_from). Inputs: ruled_events (fraud_ruled_events.sql),
-- user_activity (fraud_events.sql), fraud_rules and default_rules (fraud_inputs.sql); velocity views come from
-- fraud_velocity.sql (one per entity and window); the job unions them all into fraud_alerts.
--
-- Rules: every event carries the parameters in force at its event time (tenant row, then the
-- "*" row, then the defaults compiled in from vigil/fraud_rules.py).
-- When a pattern alerts: the patterns over a window (shared_device, cross_tenant_card,
-- refund_abuse, amount_anomaly, and velocity in fraud_velocity.sql) alert at the first event at
-- which their whole condition holds for the entity, and again only after it was false at one of
-- the entity's events (`holds AND NOT held_before`, held_before being the condition at the
-- entity's previous event, LAG): never on a count being equal to a threshold, which misses a
-- condition of two parts whose second part becomes true last. The sequence patterns
-- (card_testing, account_takeover: MATCH_RECOGNIZE, AFTER MATCH SKIP PAST LAST ROW) and
-- impossible_travel (one leg) alert once per occurrence; repeated occurrences of one entity are
-- grouped downstream.
-- State: MATCH_RECOGNIZE keeps partial matches until WITHIN expires; OVER windows keep their range
-- (1 min .. 30 days) of input rows, so each window reads only the columns used after it (a whole
-- ruled event is ~55 columns); user_activity's history (new device/country) expires with
-- table.exec.state.ttl.
-- Lateness: all patterns run on event time; events behind the watermark are dropped by the
-- pattern operators (ingest already routed late events to its DLQ, so this only concerns
-- disorder beyond ${out_of_orderness_s} s inside events.clean).

CREATE TEMPORARY VIEW payment_attempts AS
SELECT * FROM ruled_events WHERE event_type = 'payment_attempt';

-- card_testing: small attempts on one card, then a large one, within 30 minutes.
CREATE TEMPORARY VIEW alerts_card_testing AS
SELECT tenant_id, 'card_testing' AS fraud_pattern, 'card' AS entity_type, card_fingerprint AS entity_id,
       event_id, event_time,
       LEAST(1.0, 0.7 + 0.05 * (small_attempts - min_small)) AS score,
       JSON_OBJECT('first_event_id' VALUE first_event_id, 'small_attempts' VALUE small_attempts,
                   'small_usd_max' VALUE small_usd_max, 'large_amount_usd' VALUE large_usd,
                   'device_id' VALUE device_id, 'minutes' VALUE minutes) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT tenant_id, card_fingerprint, event_id, event_time, amount_usd, device_id, card_testing_small_usd,
             card_testing_large_usd, card_testing_min_small, rules_effective_from, appended_at
      FROM payment_attempts WHERE card_fingerprint IS NOT NULL AND card_testing_enabled)
MATCH_RECOGNIZE (
  PARTITION BY tenant_id, card_fingerprint
  ORDER BY event_time
  MEASURES FIRST(S.event_id) AS first_event_id, COUNT(S.event_id) AS small_attempts,
           MAX(S.amount_usd) AS small_usd_max, B.card_testing_min_small AS min_small,
           B.event_id AS event_id, B.event_time AS event_time, B.amount_usd AS large_usd,
           B.device_id AS device_id, B.rules_effective_from AS rules_effective_from,
           B.appended_at AS appended_at,
           TIMESTAMPDIFF(MINUTE, FIRST(S.event_time), B.event_time) AS minutes
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (S{2,} B) WITHIN INTERVAL '30' MINUTE
  DEFINE S AS S.amount_usd < S.card_testing_small_usd,
         B AS B.amount_usd >= B.card_testing_large_usd
)
WHERE small_attempts >= min_small;

-- account_takeover: a login from a device or country the user had not used, a password change,
-- then a large checkout, within 30 minutes.
CREATE TEMPORARY VIEW alerts_account_takeover AS
SELECT tenant_id, 'account_takeover' AS fraud_pattern, 'user' AS entity_type, user_id AS entity_id,
       event_id, event_time, 0.9 AS score,
       JSON_OBJECT('login_event_id' VALUE login_event_id, 'new_device' VALUE new_device,
                   'new_country' VALUE new_country, 'login_country' VALUE login_country,
                   'password_change_event_id' VALUE password_event_id,
                   'checkout_amount_usd' VALUE checkout_usd, 'minutes' VALUE minutes) AS evidence,
       rules_effective_from, appended_at
-- Only the three event types the pattern names reach MATCH_RECOGNIZE: its buffer per user then
-- holds a handful of rows, not the whole session (with RocksDB state the pattern operators that
-- saw every event were the job's bottleneck; docs/benchmarks.md).
FROM (SELECT * FROM ruled_events
      WHERE account_takeover_enabled AND event_type IN ('login', 'password_change', 'checkout'))
MATCH_RECOGNIZE (
  PARTITION BY tenant_id, user_id
  ORDER BY event_time
  MEASURES L.event_id AS login_event_id, L.device_uses = 1 AS new_device,
           L.country_uses = 1 AS new_country, L.country AS login_country,
           P.event_id AS password_event_id, C.event_id AS event_id, C.event_time AS event_time,
           C.amount_usd AS checkout_usd, C.rules_effective_from AS rules_effective_from,
           C.appended_at AS appended_at,
           TIMESTAMPDIFF(MINUTE, L.event_time, C.event_time) AS minutes
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (L X*? P Y*? C) WITHIN INTERVAL '30' MINUTE
  DEFINE L AS L.event_type = 'login' AND (L.device_uses = 1 OR L.country_uses = 1),
         P AS P.event_type = 'password_change',
         C AS C.event_type = 'checkout' AND C.amount_usd >= C.account_takeover_min_usd
);

-- impossible_travel: consecutive located events of one user implying more than max_kmh. The
-- previous located event comes from user_activity (one place per user) rather than a pattern.
CREATE TEMPORARY VIEW travel_legs AS
SELECT tenant_id, user_id, event_id, event_time, country, appended_at, default_key,
       TIMESTAMPDIFF(SECOND, A_event_time, event_time) AS seconds, A_event_id AS from_event_id,
       A_country AS from_country, ${haversine_km} AS km
FROM (
  SELECT tenant_id, user_id, event_id, event_time, country, latitude, longitude, appended_at, default_key,
         a.prev_located_time AS A_event_time, a.prev_located_event_id AS A_event_id,
         a.prev_located_country AS A_country, a.prev_located_latitude AS A_latitude,
         a.prev_located_longitude AS A_longitude
  FROM user_activity
  WHERE latitude IS NOT NULL AND longitude IS NOT NULL
) AS B;

-- Only legs that moved can exceed a threshold (min_km is positive: vigil/fraud_rules.py), so only
-- they are joined to the rules.
CREATE TEMPORARY VIEW ruled_travel_legs AS
SELECT l.tenant_id, l.user_id, l.event_id, l.event_time, l.country, l.appended_at, l.seconds, l.from_event_id,
       l.from_country, l.km, ${effective_rules},
       COALESCE(t.effective_from, d.effective_from) AS rules_effective_from
FROM (SELECT * FROM travel_legs WHERE from_event_id IS NOT NULL AND km > 0) AS l
LEFT JOIN fraud_rules FOR SYSTEM_TIME AS OF l.event_time AS t ON l.tenant_id = t.tenant_id
LEFT JOIN default_rules FOR SYSTEM_TIME AS OF l.event_time AS d ON l.default_key = d.shard_key;

CREATE TEMPORARY VIEW alerts_impossible_travel AS
SELECT tenant_id, 'impossible_travel' AS fraud_pattern, 'user' AS entity_type, user_id AS entity_id,
       event_id, event_time,
       LEAST(1.0, 0.6 + 0.1 * kmh / max_kmh) AS score,
       JSON_OBJECT('from_event_id' VALUE from_event_id, 'from_country' VALUE from_country,
                   'to_country' VALUE country, 'km' VALUE ROUND(km, 1),
                   'seconds' VALUE seconds, 'kmh' VALUE ROUND(kmh, 0)) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT *, km * 3600.0 / GREATEST(seconds, 1) AS kmh, impossible_travel_max_kmh AS max_kmh
      FROM ruled_travel_legs)
WHERE impossible_travel_enabled AND km >= impossible_travel_min_km AND kmh > max_kmh;

-- shared_device: one device used by many accounts of a tenant within an hour.
CREATE TEMPORARY VIEW device_accounts AS
SELECT *, accounts >= shared_device_min_users AS holds
FROM (
  SELECT *, COUNT(DISTINCT user_id) OVER (PARTITION BY tenant_id, device_id ORDER BY event_time
                                          RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS accounts
  FROM (SELECT tenant_id, device_id, user_id, event_id, event_time, shared_device_enabled, shared_device_min_users,
               rules_effective_from, appended_at
        FROM ruled_events
        WHERE device_id IS NOT NULL AND event_type IN ('login', 'payment_attempt'))
);

CREATE TEMPORARY VIEW alerts_shared_device AS
SELECT tenant_id, 'shared_device' AS fraud_pattern, 'device' AS entity_type, device_id AS entity_id,
       event_id, event_time, 0.8 AS score,
       JSON_OBJECT('accounts_1h' VALUE accounts, 'threshold' VALUE shared_device_min_users,
                   'user_id' VALUE user_id) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT *, LAG(holds, 1, FALSE) OVER (PARTITION BY tenant_id, device_id ORDER BY event_time) AS held_before
      FROM device_accounts)
WHERE shared_device_enabled AND holds AND NOT COALESCE(held_before, FALSE);

-- cross_tenant_card: one card fingerprint paying at several tenants within 24 hours (cards
-- tested or cashed out across shops of different platforms' tenants). Partitioned by the
-- fingerprint alone: the one deliberate cross-tenant state, over a pseudonymous identifier;
-- the evidence gives the number of tenants only, never which ones (tenant isolation).
CREATE TEMPORARY VIEW card_tenants AS
SELECT *, tenants >= cross_tenant_card_min_tenants AS holds
FROM (
  SELECT *, COUNT(DISTINCT tenant_id) OVER (PARTITION BY card_fingerprint ORDER BY event_time
                                            RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW) AS tenants
  FROM (SELECT tenant_id, card_fingerprint, event_id, event_time, cross_tenant_card_enabled,
               cross_tenant_card_min_tenants, rules_effective_from, appended_at
        FROM payment_attempts
        WHERE card_fingerprint IS NOT NULL)
);

CREATE TEMPORARY VIEW alerts_cross_tenant_card AS
SELECT tenant_id, 'cross_tenant_card' AS fraud_pattern, 'card' AS entity_type, card_fingerprint AS entity_id,
       event_id, event_time, 0.8 AS score,
       JSON_OBJECT('tenants_24h' VALUE tenants, 'threshold' VALUE cross_tenant_card_min_tenants) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT *, LAG(holds, 1, FALSE) OVER (PARTITION BY card_fingerprint ORDER BY event_time) AS held_before
      FROM card_tenants)
WHERE cross_tenant_card_enabled AND holds AND NOT COALESCE(held_before, FALSE);

-- refund_abuse: refunds and chargebacks of one user within 30 days, against their purchases.
-- The condition (both parts) is evaluated at each of the user's refunds, chargebacks and approved
-- payments; it alerts where it becomes true, whichever part became true last.
CREATE TEMPORARY VIEW money_back AS
SELECT *, refunds >= refund_abuse_min_refunds
          AND CAST(refunds AS DOUBLE) / GREATEST(purchases, 1) >= refund_abuse_min_ratio AS holds
FROM (
  SELECT *, SUM(is_refund) OVER w AS refunds, SUM(1 - is_refund) OVER w AS purchases
  FROM (SELECT tenant_id, user_id, event_id, event_time, event_type,
               CASE WHEN event_type IN ('refund', 'chargeback') THEN 1 ELSE 0 END AS is_refund,
               refund_abuse_enabled, refund_abuse_min_refunds, refund_abuse_min_ratio, rules_effective_from, appended_at
        FROM ruled_events
        WHERE event_type IN ('refund', 'chargeback') OR (event_type = 'payment_result' AND status = 'approved'))
  WINDOW w AS (PARTITION BY tenant_id, user_id ORDER BY event_time
               RANGE BETWEEN INTERVAL '30' DAY PRECEDING AND CURRENT ROW)
);

CREATE TEMPORARY VIEW alerts_refund_abuse AS
SELECT tenant_id, 'refund_abuse' AS fraud_pattern, 'user' AS entity_type, user_id AS entity_id,
       event_id, event_time,
       CASE WHEN event_type = 'chargeback' THEN 0.9 ELSE 0.7 END AS score,
       JSON_OBJECT('refunds_30d' VALUE refunds, 'purchases_30d' VALUE purchases,
                   'trigger' VALUE event_type) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT *, LAG(holds, 1, FALSE) OVER (PARTITION BY tenant_id, user_id ORDER BY event_time) AS held_before
      FROM money_back)
WHERE refund_abuse_enabled AND holds AND NOT COALESCE(held_before, FALSE);

-- amount_anomaly: a payment far above what is usual for this customer: a robust z-score of
-- ln(amount) against the customer's previous 20 payments (amount_history, java/vigil-formats
-- AmountHistory: their median and 1.4826 x their median absolute deviation), so that a customer
-- whose amounts always varied widely is not flagged for a purchase a few times their median. Log
-- space because amounts are skewed; the spread is floored at 0.5 (a factor of 1.65) so that a
-- customer with near-identical past payments is not flagged for a modestly larger one; at least
-- amount_anomaly_min_history previous payments; and at least amount_anomaly_min_over_max times
-- the largest of them: a few previous payments can happen to lie close together (a small
-- spread) for a customer who also paid far more, and a payment within what they already paid is
-- not an anomaly for them. A run of anomalous payments alerts once.
CREATE TEMPORARY VIEW payment_history AS
SELECT *, amount_history(log_usd) OVER (PARTITION BY tenant_id, user_id ORDER BY event_time
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS hist
FROM (SELECT tenant_id, user_id, event_id, event_time, amount_usd, LN(GREATEST(amount_usd, 0.01)) AS log_usd,
             amount_anomaly_enabled, amount_anomaly_min_history, amount_anomaly_min_z, amount_anomaly_min_over_max,
             rules_effective_from, appended_at
      FROM payment_attempts WHERE amount_usd IS NOT NULL);

CREATE TEMPORARY VIEW payment_z AS
SELECT *, history >= amount_anomaly_min_history AND z >= amount_anomaly_min_z
          AND amount_usd >= amount_anomaly_min_over_max * largest_usd AS holds
FROM (
  SELECT tenant_id, user_id, event_id, event_time, amount_usd, amount_anomaly_enabled, amount_anomaly_min_history,
         amount_anomaly_min_z, amount_anomaly_min_over_max, rules_effective_from, appended_at, hist.history AS history,
         EXP(hist.median_log) AS typical_usd, EXP(hist.max_log) AS largest_usd, hist.spread_log AS spread_log,
         COALESCE((log_usd - hist.median_log) / GREATEST(hist.spread_log, 0.5), 0.0) AS z
  FROM payment_history
);

CREATE TEMPORARY VIEW alerts_amount_anomaly AS
SELECT tenant_id, 'amount_anomaly' AS fraud_pattern, 'user' AS entity_type, user_id AS entity_id,
       event_id, event_time, LEAST(1.0, 0.5 + 0.05 * z) AS score,
       JSON_OBJECT('amount_usd' VALUE ROUND(amount_usd, 2), 'typical_usd' VALUE ROUND(typical_usd, 2),
                   'spread_factor' VALUE ROUND(EXP(spread_log), 2), 'z' VALUE ROUND(z, 2),
                   'largest_before_usd' VALUE ROUND(largest_usd, 2),
                   'history' VALUE history) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT *, LAG(holds, 1, FALSE) OVER (PARTITION BY tenant_id, user_id ORDER BY event_time) AS held_before
      FROM payment_z)
WHERE amount_anomaly_enabled AND holds AND NOT COALESCE(held_before, FALSE);
