-- Routing of the ingest job: validation verdicts -> late check -> de-duplication -> clean | dlq.
-- Inputs: raw_events (sql/ddl/ingest_tables.sql), the Python UDF validate_event
-- (udfs/ingest_udfs.py) and the Java counters count_verdict and count_rejection
-- (java/vigil-formats, TenantCounters: per-tenant metrics for the data-quality alert).
-- Every input row leaves through exactly one of the two INSERTs below (clean or dlq), which the integration test checks id by id.
--
-- State: one COUNT per (tenant_id, event_id) in the OVER aggregation, expired after
-- table.exec.state.ttl (the de-duplication horizon, IngestConfig.dedup_ttl). A duplicate that
-- arrives later than that is accepted again: the horizon is a documented trade-off (docs/adr/0002).
-- Lateness: a valid event whose record timestamp is behind the current watermark is routed to the
-- DLQ as 'late_event' with its bytes (replayable), never dropped.

CREATE TEMPORARY VIEW verdicts AS
SELECT record_key, payload, kafka_partition, kafka_offset, kafka_ts, proc_time,
       count_verdict(v.reason, CASE WHEN v.reason = 'invalid_identifier' THEN NULL ELSE v.tenant_id END) AS reason,
       v.detail, v.payload_size, v.event_id, v.event_time_ms, v.tenant_id, v.merchant_id, v.user_id,
       v.session_id, v.device_id, v.ip, v.card_fingerprint, v.event_type, v.status, v.amount,
       v.currency, v.country, v.latitude, v.longitude, v.product_id, v.category, v.schema_version,
       v.payment_method, v.loyalty_tier
FROM (
  SELECT record_key, payload, kafka_partition, kafka_offset, kafka_ts, proc_time,
         validate_event(payload, record_key) AS v
  FROM raw_events
);

CREATE TEMPORARY VIEW timely AS
SELECT *,
       CURRENT_WATERMARK(kafka_ts) IS NOT NULL AND kafka_ts < CURRENT_WATERMARK(kafka_ts) AS is_late
FROM verdicts
WHERE reason IS NULL;

CREATE TEMPORARY VIEW counted AS
SELECT *,
       COUNT(*) OVER (PARTITION BY tenant_id, event_id ORDER BY proc_time
                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS copies
FROM timely
WHERE NOT is_late;

INSERT INTO clean_events
SELECT CAST(record_key AS STRING), event_id, CAST(TO_TIMESTAMP_LTZ(event_time_ms, 3) AS TIMESTAMP(3)), tenant_id,
       merchant_id, user_id, session_id, device_id, ip, card_fingerprint, event_type, status,
       amount, currency, country, latitude, longitude, product_id, category,
       CAST(schema_version AS INT), payment_method, loyalty_tier, kafka_partition, kafka_offset
FROM counted
WHERE copies = 1;

INSERT INTO dlq_events
SELECT record_key, reason, detail, tenant_id, event_id, '${raw_topic}',
       kafka_partition, kafka_offset, kafka_ts, payload, CAST(payload_size AS INT), '${job_name}'
FROM (
  SELECT record_key, reason, detail, tenant_id, event_id, kafka_partition, kafka_offset, kafka_ts,
         payload, payload_size
  FROM verdicts WHERE reason IS NOT NULL
  UNION ALL
  SELECT record_key, count_rejection('late_event', tenant_id),
         'record timestamp ' || CAST(kafka_ts AS STRING) || ' is behind the watermark', tenant_id,
         event_id, kafka_partition, kafka_offset, kafka_ts, payload, payload_size
  FROM timely WHERE is_late
  UNION ALL
  SELECT record_key, count_rejection('duplicate', tenant_id), 'copy ' || CAST(copies AS STRING) || ' of this event_id',
         tenant_id, event_id, kafka_partition, kafka_offset, kafka_ts, payload, payload_size
  FROM counted WHERE copies > 1
);
