-- Velocity of payment attempts per ${entity_type} over 1 min, 10 min and 1 h, rendered once per
-- entity (card, user, device, ip) by jobs/fraud_detection.py. Input: payment_attempts
-- (fraud_patterns.sql), with the rules in force at each payment.
-- payment_velocity_process (java/vigil-formats PaymentVelocityProcess, a process table function)
-- counts the entity's payments in each window as of each payment, that one included, in one keyed
-- operator per entity (it was one RANGE OVER per entity and window). Payments of one millisecond
-- count in the order they were read, so a threshold is met by exactly one payment.
-- One alert per window when the count reaches the threshold in force (not one per event above it).
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
       event_id, event_time, LEAST(1.0, 0.6 + 0.1 * attempts / threshold) AS score,
       JSON_OBJECT('window' VALUE window_label, 'attempts' VALUE attempts, 'threshold' VALUE threshold) AS evidence,
       rules_effective_from, appended_at
FROM (SELECT *, '1 min' AS window_label, v.attempts_1m AS attempts, velocity_1m AS threshold FROM velocity_${entity_type}
      UNION ALL
      SELECT *, '10 min', v.attempts_10m, velocity_10m FROM velocity_${entity_type}
      UNION ALL
      SELECT *, '1 h', v.attempts_1h, velocity_1h FROM velocity_${entity_type})
WHERE velocity_enabled AND attempts = threshold;
