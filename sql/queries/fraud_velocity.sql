-- Velocity of payment attempts per ${entity_type} over ${window_label}, rendered once per entity
-- (card, user, device, ip) and window (1 min, 10 min, 1 h) by jobs/fraud_detection.py: Flink
-- requires all OVER windows of one SELECT to be identical, so each pair is its own view.
-- One alert when the count reaches the threshold in force (not one per event above it).
CREATE TEMPORARY VIEW alerts_velocity_${entity_type}_${window_name} AS
SELECT tenant_id, 'velocity' AS fraud_pattern, '${entity_type}' AS entity_type, entity_id,
       event_id, event_time, LEAST(1.0, 0.6 + 0.1 * attempts / ${threshold}) AS score,
       JSON_OBJECT('window' VALUE '${window_label}', 'attempts' VALUE attempts,
                   'threshold' VALUE ${threshold}) AS evidence,
       rules_effective_from, appended_at
FROM (
  SELECT *, COUNT(*) OVER (PARTITION BY tenant_id, entity_id ORDER BY event_time
                           RANGE BETWEEN INTERVAL ${window_interval} PRECEDING AND CURRENT ROW) AS attempts
  -- Only the columns used after the window: OVER keeps its input rows for the whole range.
  FROM (SELECT tenant_id, ${entity_column} AS entity_id, event_id, event_time, velocity_enabled, ${threshold},
               rules_effective_from, appended_at
        FROM payment_attempts
        WHERE ${entity_column} IS NOT NULL)
)
WHERE velocity_enabled AND attempts = ${threshold};
