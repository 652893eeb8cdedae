-- Every record of the fraud job's sources with what is wrong with it, if anything
-- (jobs/fraud_detection.py). Sources: clean_events_source, fraud_rules_source and
-- chargeback_labels_source (sql/ddl/fraud_tables.sql); check_rule is a Python UDF
-- (udfs/fraud_input_udfs.py over vigil/fraud_rules.parse_rule_message).
-- Outputs: event_verdicts_query, rule_verdicts_query and label_verdicts_query, which the job plans
-- once each and registers without the suffix (plan_once): the patterns, the features, the
-- low-latency path and the dead-letter output all read those streams, so each topic is read and
-- decoded once per job (ADR 0007). fraud_inputs.sql splits them into what is used and what is
-- refused.
-- ${events_missing} / ${labels_missing}: the names of the required columns that are null, comma
-- separated ('' when none is; jobs/fraud_detection.missing_columns_sql).

-- Events the patterns can use: decodable, with the fields every pattern keys or orders on, and an
-- event time the watermark can follow (sql/ddl/fraud_tables.sql: row_time). Only the columns the
-- job reads travel on; the record's bytes and key only with a refused or late record (the
-- dead-letter output keeps them).
-- is_late: a usable event at or behind the job's watermark when it arrives. The event-time
-- operators after this point would drop it without a trace; fraud_events.sql keeps it out of
-- them, fraud_inputs.sql dead-letters it as late_event and the risk scorer still scores a late
-- payment (jobs/fraud_sql.decision_inputs_sql). Ingest refuses events late by its own watermark,
-- but events.clean can still hold some: after an ingest restart its watermark starts from
-- nothing, and several ingest subtasks writing one partition interleave at different paces.
-- Evaluated here, next to the source: no later operator sees a higher watermark than this one.
CREATE TEMPORARY VIEW event_verdicts_query AS
SELECT IF(problem IS NULL AND NOT is_late, CAST(NULL AS BYTES), record_key) AS record_key, event_id, event_time,
       tenant_id, merchant_id, user_id, device_id, ip, card_fingerprint, event_type, status, amount, currency,
       country, latitude, longitude, appended_at, kafka_partition, kafka_offset, decode_error, row_time, problem,
       is_late, arrival_watermark,
       IF(problem IS NULL AND NOT is_late, CAST(NULL AS BYTES), raw_value) AS raw_value
FROM (SELECT *,
             problem IS NULL AND CURRENT_WATERMARK(row_time) IS NOT NULL
               AND row_time <= CURRENT_WATERMARK(row_time) AS is_late,
             CURRENT_WATERMARK(row_time) AS arrival_watermark
      FROM (SELECT *,
             CASE
               WHEN decode_error IS NOT NULL THEN decode_error
               WHEN ${events_missing} <> '' THEN 'required fields missing: ' || ${events_missing}
               -- ingest refuses events > 5 min ahead of its clock; later ones here come from elsewhere
               WHEN event_time > CAST(appended_at AS TIMESTAMP(3)) + INTERVAL '1' HOUR
                 THEN 'event_time ' || CAST(event_time AS STRING) || ' is more than 1 hour after the record was appended ('
                      || CAST(CAST(appended_at AS TIMESTAMP(3)) AS STRING) || ')'
             END AS problem
      FROM clean_events_source));

-- Rules: parsed and validated in Python (unknown parameters, types, ranges, key = tenant); only
-- accepted rows reach the versioned table, so a refused record leaves the tenant's rules as they were.
CREATE TEMPORARY VIEW rule_verdicts_query AS
SELECT record_key, payload, kafka_partition, kafka_offset, kafka_ts, effective_from, ${rule_fields}
FROM (SELECT *, check_rule(record_key, payload, parsed_effective_from IS NOT NULL) AS r FROM fraud_rules_source);

-- Chargeback labels: parsed by dlq-json; refused when a field the join or the watermark needs is
-- missing, or when the label is not 0-400 days after its payment.
CREATE TEMPORARY VIEW label_verdicts_query AS
SELECT *,
       CASE
         WHEN decode_error IS NOT NULL THEN decode_error
         WHEN ${labels_missing} <> '' THEN 'required fields missing: ' || ${labels_missing}
         WHEN CHAR_LENGTH(tenant_id) > 128 OR CHAR_LENGTH(event_id) > 128
           THEN 'tenant_id or event_id longer than 128 characters'
         WHEN event_time <= 0 OR label_time < event_time OR label_time - event_time > CAST(400 AS BIGINT) * 86400000
           THEN 'label_time ' || CAST(label_time AS STRING) || ' is not 0-400 days after event_time '
                || CAST(event_time AS STRING)
       END AS problem
FROM chargeback_labels_source;
