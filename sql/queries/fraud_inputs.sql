-- Inputs of the fraud job (jobs/fraud_detection.py), made safe: every record of every source is
-- either used or sent to the job's dead-letter topic with a reason, never a job failure and never
-- a silent drop (docs/adr/0006). Sources: clean_events_source, fraud_rules_source and
-- chargeback_labels_source (sql/ddl/fraud_tables.sql); check_rule is a Python UDF
-- (udfs/fraud_input_udfs.py over vigil/fraud_rules.parse_rule_message).
--
-- ${events_missing} / ${labels_missing}: the names of the required columns that are null, comma
-- separated ('' when none is; jobs/fraud_detection.missing_columns_sql).
-- Outputs (views): clean_events (usable events, time attribute event_time), fraud_rules (a
-- versioned table: the newest accepted rule row per tenant by effective_from), chargeback_labels,
-- and input_rejections (what goes to fraud_dlq, in its column order).
-- State: the versioned fraud_rules keeps one row per tenant (a rowtime de-duplication).

-- Events the patterns can use: decodable, with the fields every pattern keys or orders on, and an
-- event time the watermark can follow (sql/ddl/fraud_tables.sql: row_time).
CREATE TEMPORARY VIEW event_verdicts AS
SELECT *,
       CASE
         WHEN decode_error IS NOT NULL THEN decode_error
         WHEN ${events_missing} <> '' THEN 'required fields missing: ' || ${events_missing}
         -- ingest refuses events > 5 min ahead of its clock; later ones here come from elsewhere
         WHEN event_time > CAST(appended_at AS TIMESTAMP(3)) + INTERVAL '1' HOUR
           THEN 'event_time ' || CAST(event_time AS STRING) || ' is more than 1 hour after the record was appended ('
                || CAST(CAST(appended_at AS TIMESTAMP(3)) AS STRING) || ')'
       END AS problem
FROM clean_events_source;

CREATE TEMPORARY VIEW clean_events AS
SELECT event_id, row_time AS event_time, tenant_id, merchant_id, user_id, session_id, device_id, ip,
       card_fingerprint, event_type, status, amount, currency, country, latitude, longitude, product_id,
       category, schema_version, payment_method, loyalty_tier, source_partition, source_offset, appended_at
FROM event_verdicts
WHERE problem IS NULL;

-- Rules: parsed and validated in Python (unknown parameters, types, ranges, key = tenant); only
-- accepted rows reach the versioned table, so a refused record leaves the tenant's rules as they were.
CREATE TEMPORARY VIEW rule_verdicts AS
SELECT record_key, payload, kafka_partition, kafka_offset, kafka_ts, effective_from, ${rule_fields}
FROM (SELECT *, check_rule(record_key, payload, parsed_effective_from IS NOT NULL) AS r FROM fraud_rules_source);

CREATE TEMPORARY VIEW fraud_rules AS
SELECT tenant_id, ${rule_names}, effective_from
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY effective_from DESC) AS row_num
      FROM rule_verdicts WHERE reason IS NULL)
WHERE row_num = 1;

-- The "*" row (defaults for every tenant) once per shard '*0' .. '*${last_shard}': events join it on a
-- shard taken from their event time (fraud_patterns.sql: default_key), so the join's state and
-- work spread over all subtasks instead of one key that sees every event.
CREATE TEMPORARY VIEW default_rules AS
SELECT shard_key, ${rule_names}, effective_from
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY shard_key ORDER BY effective_from DESC) AS row_num
      FROM (SELECT v.*, '*' || CAST(shard AS STRING) AS shard_key
            FROM rule_verdicts AS v CROSS JOIN UNNEST(${shards}) AS s (shard)
            WHERE reason IS NULL AND tenant_id = '*'))
WHERE row_num = 1;

-- Chargeback labels: parsed by dlq-json; refused when a field the join or the watermark needs is
-- missing, or when the label is not 0-400 days after its payment.
CREATE TEMPORARY VIEW label_verdicts AS
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

CREATE TEMPORARY VIEW chargeback_labels AS
SELECT tenant_id, event_id, event_time, label_time, is_fraud, outcome, label_ts
FROM label_verdicts
WHERE problem IS NULL;

-- Everything refused above, in fraud_dlq's column order (the job adds internal errors of its
-- Python operators).
CREATE TEMPORARY VIEW input_rejections AS
SELECT record_key, IF(decode_error IS NOT NULL, 'avro_decode_error', 'invalid_event') AS reason, problem AS detail,
       tenant_id, event_id, '${clean_topic}' AS source_topic, kafka_partition AS source_partition,
       kafka_offset AS source_offset, appended_at AS source_timestamp, raw_value AS payload
FROM event_verdicts WHERE problem IS NOT NULL
UNION ALL
SELECT record_key, reason, detail, CAST(NULL AS STRING), CAST(NULL AS STRING), '${rules_topic}', kafka_partition,
       kafka_offset, kafka_ts, payload
FROM rule_verdicts WHERE reason IS NOT NULL
UNION ALL
SELECT record_key, IF(decode_error IS NOT NULL, 'json_parse_error', 'invalid_label'), problem, tenant_id, event_id,
       '${chargebacks_topic}', kafka_partition, kafka_offset, kafka_ts, raw_value
FROM label_verdicts WHERE problem IS NOT NULL;
