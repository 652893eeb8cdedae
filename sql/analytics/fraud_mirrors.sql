-- Mirrors of the fraud job's outputs in PostgreSQL, for the query API and the dashboard: incidents,
-- alerts and online features, one row per id, rewritten by every new version.
--
-- Input   vigil.streams.fraud_incident_versions (fraud.incidents), fraud_alerts (fraud.alerts),
--         features_online_versions (features.online): every record as written, read without
--         keeping anything in Flink state (the upsert tables of the catalog would keep each key).
--         Example (incident): {"incident_id": "9f2c..", "tenant_id": "t007", "status": "open",
--         "severity": "high", "max_score": 0.83, "alert_count": 3, "patterns": ["card_testing"], ...}
-- Output  analytics.fraud_incidents (by incident_id), analytics.fraud_alerts (by alert_id),
--         analytics.entity_features (by tenant, entity type and id): upserts, so the last version
--         written wins. A key's versions are in one Kafka partition, read in order by one subtask
--         and written by it (same parallelism, no shuffle), so an older version never overwrites
--         a newer one; a replay after a restore rewrites the same versions in the same order.
-- Late    nothing is windowed: every version is written when read.
-- Bad     records that cannot be decoded (decode_error) are not mirrored; the dlq-avro-confluent
--         format counts them (vigil_undecodable_records).
-- Run     part of the analytics job: vigil submit analytics
INSERT INTO analytics.fraud_incidents
SELECT incident_id, tenant_id, status, severity, max_score, first_seen, last_seen, alert_count,
       ${patterns_array} AS patterns,   -- a text[] literal: {"card_testing","velocity"}
       ${entities_array} AS entities,
       opened_by,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM fraud_incident_versions
WHERE decode_error IS NULL AND incident_id IS NOT NULL;

-- severity: the incidents' scale (udfs/incidents.SEVERITIES) applied to the alert's score;
-- reasons: the reason codes as a JSON array.
INSERT INTO analytics.fraud_alerts
SELECT alert_id, tenant_id, event_id, COALESCE(fraud_pattern, 'model') AS `pattern`, entity_type, entity_id,
       score, ${severity} AS severity, event_time, JSON_STRING(reason_codes) AS reasons,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM fraud_alerts
WHERE decode_error IS NULL AND alert_id IS NOT NULL;

-- features: one JSON object of the entity's features (udfs/fraud_features.FEATURES), jsonb in PostgreSQL.
INSERT INTO analytics.entity_features
SELECT tenant_id, entity_type, entity_id, as_of, as_of_event_id,
       ${features_json} AS features,
       CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS updated_at
FROM features_online_versions
WHERE decode_error IS NULL AND tenant_id IS NOT NULL AND entity_type IS NOT NULL AND entity_id IS NOT NULL;
