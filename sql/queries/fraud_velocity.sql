-- Velocity of payment attempts per ${entity_type} over 1 min, 10 min and 1 h, rendered once per
-- entity (card, user, device, ip) by jobs/fraud_detection.py. Input: payment_attempts
-- (fraud_patterns.sql), with the rules in force at each payment.
-- payment_velocity_process (java/vigil-formats PaymentVelocityProcess, a process table function)
-- counts the entity's payments in each window as of each payment, that one included, in one keyed
-- operator per entity (it was one RANGE OVER per entity and window). Payments of one millisecond
-- count in the order they were read, so a threshold is met by exactly one payment.
-- One alert per burst: at the payment where the entity's count first reaches the threshold in
-- force in any of the three windows (the condition holds now and did not hold just before this
-- payment, i.e. with one payment fewer in every window at the same time). Counts only fall by time
-- passing, so a condition that fell and rises again alerts again; another window crossing while
-- the condition still holds does not. The evidence gives the counts in all three windows.
-- State: the times of the entity's payments of the last hour, dropped once the watermark passes
-- its newest payment plus an hour (event time; no processing-time TTL, ADR 0007 section 9).
CREATE TEMPORARY VIEW velocity_input_${entity_type} AS
SELECT tenant_id, ${entity_column} AS entity_id, event_id, event_time, velocity_enabled, velocity_1m, velocity_10m,
       velocity_1h, rules_effective_from, appended_at
FROM payment_attempts
WHERE ${entity_column} IS NOT NULL;

CREATE TEMPORARY VIEW velocity_${entity_type} AS
SELECT tenant_id, entity_id, event_id, rowtime AS event_time, velocity_enabled, velocity_1m, velocity_10m,
       velocity_1h, rules_effective_from, appended_at, v
FROM payment_velocity_process(input => TABLE velocity_input_${entity_type} PARTITION BY (tenant_id, entity_id),
                              on_time => DESCRIPTOR(event_time), uid => 'velocity-${entity_type}');

CREATE TEMPORARY VIEW alerts_velocity_${entity_type} AS
SELECT tenant_id, 'velocity' AS fraud_pattern, '${entity_type}' AS entity_type, entity_id,
       event_id, event_time, LEAST(1.0, 0.6 + 0.1 * ratio) AS score,
       JSON_OBJECT('window' VALUE window_label, 'attempts' VALUE attempts, 'threshold' VALUE threshold,
                   'attempts_1m' VALUE v.attempts_1m, 'attempts_10m' VALUE v.attempts_10m,
                   'attempts_1h' VALUE v.attempts_1h) AS evidence,
       rules_effective_from, appended_at
FROM (
  SELECT *,
         -- the shortest window over its threshold names the burst
         CASE WHEN v.attempts_1m >= velocity_1m THEN '1 min'
              WHEN v.attempts_10m >= velocity_10m THEN '10 min' ELSE '1 h' END AS window_label,
         CASE WHEN v.attempts_1m >= velocity_1m THEN v.attempts_1m
              WHEN v.attempts_10m >= velocity_10m THEN v.attempts_10m ELSE v.attempts_1h END AS attempts,
         CASE WHEN v.attempts_1m >= velocity_1m THEN velocity_1m
              WHEN v.attempts_10m >= velocity_10m THEN velocity_10m ELSE velocity_1h END AS threshold,
         GREATEST(CAST(v.attempts_1m AS DOUBLE) / velocity_1m, CAST(v.attempts_10m AS DOUBLE) / velocity_10m,
                  CAST(v.attempts_1h AS DOUBLE) / velocity_1h) AS ratio
  FROM velocity_${entity_type}
  WHERE velocity_enabled
    AND (v.attempts_1m >= velocity_1m OR v.attempts_10m >= velocity_10m OR v.attempts_1h >= velocity_1h)
    AND NOT (v.attempts_1m - 1 >= velocity_1m OR v.attempts_10m - 1 >= velocity_10m
             OR v.attempts_1h - 1 >= velocity_1h)
);
