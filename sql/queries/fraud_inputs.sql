-- Inputs of the fraud job (jobs/fraud_detection.py), made safe: every record of every source is
-- either used or sent to the job's dead-letter topic with a reason, never a job failure and never
-- a silent drop (docs/adr/0006).
-- Inputs: event_verdicts, rule_verdicts and label_verdicts, every record of each source with what is
-- wrong with it, if anything (fraud_verdicts.sql).
-- Outputs (views): clean_events (usable events, time attribute event_time), fraud_rules (a
-- versioned table: the newest accepted rule row per tenant by effective_from), chargeback_labels,
-- and input_rejections (what goes to fraud_dlq, in its column order).
-- State: the versioned fraud_rules keeps one row per tenant (a rowtime de-duplication).

-- clean_events holds the late events too (is_late, fraud_verdicts.sql): the low-latency path reads
-- events in arrival order and decides a late payment like any other.
CREATE TEMPORARY VIEW clean_events AS
SELECT event_id, row_time AS event_time, tenant_id, merchant_id, user_id, device_id, ip, card_fingerprint,
       event_type, status, amount, currency, country, latitude, longitude, appended_at, is_late
FROM event_verdicts
WHERE problem IS NULL;

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

CREATE TEMPORARY VIEW chargeback_labels AS
SELECT tenant_id, event_id, event_time, label_time, is_fraud, outcome, label_ts
FROM label_verdicts
WHERE problem IS NULL;

-- Everything refused above, in fraud_dlq's column order (the job adds internal errors of its
-- Python operators). Refused rules are counted here, once each, by the Java function
-- count_rule_refusal (vigil_rules_refused{reason}, or vigil_internal_errors{function="check_rule"}
-- for an internal_error): check_rule is a Python scalar function, whose metrics thread mode never
-- reports (docs/adr/0005).
CREATE TEMPORARY VIEW input_rejections AS
SELECT record_key, IF(decode_error IS NOT NULL, 'avro_decode_error', 'invalid_event') AS reason, problem AS detail,
       tenant_id, event_id, '${clean_topic}' AS source_topic, kafka_partition AS source_partition,
       kafka_offset AS source_offset, appended_at AS source_timestamp, raw_value AS payload
FROM event_verdicts WHERE problem IS NOT NULL
UNION ALL
-- Late events (is_late): kept with their bytes and counted per tenant (count_late_event,
-- vigil_fraud_late_events{tenant}); what they miss is said in the detail.
SELECT record_key, count_late_event(tenant_id),
       'event_time ' || CAST(event_time AS STRING) || ' is at or behind the watermark '
       || CAST(CAST(arrival_watermark AS TIMESTAMP(3)) AS STRING)
       || ': left out of the event-time patterns and features; a payment is scored on its arrival-order features',
       tenant_id, event_id, '${clean_topic}', kafka_partition, kafka_offset, appended_at, raw_value
FROM event_verdicts WHERE problem IS NULL AND is_late
UNION ALL
SELECT record_key, count_rule_refusal(reason), detail, CAST(NULL AS STRING), CAST(NULL AS STRING), '${rules_topic}', kafka_partition,
       kafka_offset, kafka_ts, payload
FROM rule_verdicts WHERE reason IS NOT NULL
UNION ALL
SELECT record_key, IF(decode_error IS NOT NULL, 'json_parse_error', 'invalid_label'), problem, tenant_id, event_id,
       '${chargebacks_topic}', kafka_partition, kafka_offset, kafka_ts, raw_value
FROM label_verdicts WHERE problem IS NOT NULL;
