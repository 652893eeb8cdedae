-- Kafka tables of the fraud job (jobs/fraud_detection.py). Placeholders come from FraudConfig.
--
-- clean_events: events.clean as the ingest job writes it (Flink's avro-confluent format, schema
--   from the registry). Event time = event_time (UTC), watermarks per partition with
--   ${out_of_orderness_s} s of bounded out-of-orderness. No idleness: a silent partition holds the
--   watermark back rather than letting its late events be dropped by the patterns (ADR 0004).
CREATE TABLE clean_events (
  event_id STRING,
  event_time TIMESTAMP(3),
  tenant_id STRING,
  merchant_id STRING,
  user_id STRING,
  session_id STRING,
  device_id STRING,
  ip STRING,
  card_fingerprint STRING,
  event_type STRING,
  status STRING,
  amount DECIMAL(18, 4),
  currency STRING,
  country STRING,
  latitude DOUBLE,
  longitude DOUBLE,
  product_id STRING,
  category STRING,
  schema_version INT,
  payment_method STRING,
  loyalty_tier STRING,
  source_partition INT,
  source_offset BIGINT,
  WATERMARK FOR event_time AS event_time - INTERVAL '${out_of_orderness_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${clean_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  ${bounded_option}
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}'
);

-- fraud_rules: thresholds and switches per tenant ("*" = defaults) as a versioned table: each
--   event is joined to the rules in force at its event time (effective_from). Rules change
--   rarely, so the source is marked idle after 1 s without records and does not hold back the
--   events' watermark; a rule that arrives later applies to the events processed after it.
CREATE TABLE fraud_rules (
  tenant_id STRING,
  ${rule_columns},
  effective_from TIMESTAMP(3),
  PRIMARY KEY (tenant_id) NOT ENFORCED,
  WATERMARK FOR effective_from AS effective_from
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${rules_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.isolation.level' = 'read_committed',
  ${bounded_option}
  'scan.watermark.idle-timeout' = '1 s',
  'key.format' = 'json',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'SQL',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- fraud_alerts: one record per detection, exactly-once (Kafka transactions), key
--   tenant_id:entity_id. alert_id is a hash of tenant, pattern, entity and triggering event:
--   a replay or a restore produces the same ids, so consumers can de-duplicate across paths.
CREATE TABLE fraud_alerts (
  record_key STRING,
  alert_id STRING,
  tenant_id STRING,
  fraud_pattern STRING,
  entity_type STRING,
  entity_id STRING,
  event_id STRING,
  event_time TIMESTAMP(3),
  score DOUBLE,
  reason_codes ARRAY<STRING>,
  evidence STRING,
  rules_effective_from TIMESTAMP(3),
  decided_at TIMESTAMP(3)
) WITH (
  'connector' = 'kafka',
  'topic' = '${alerts_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-alerts',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);
