-- A job's dead-letter sink (jobs/ingest.py: dlq_events on events.dlq; jobs/fraud_detection.py:
-- fraud_dlq on fraud.dlq): every record the job refused or a bug turned into `internal_error`,
-- with its reason, a detail, where it came from and its original bytes (base64 in JSON).
-- Exactly-once (Kafka transactions), so a restore never writes a dead letter twice. One layout for
-- every job: one consumer (vigil.peek, the data-quality analytics) reads them all.
CREATE TABLE ${table_name} (
  record_key BYTES,
  reason STRING,
  detail STRING,
  tenant_id STRING,
  event_id STRING,
  source_topic STRING,
  source_partition INT,
  source_offset BIGINT,
  source_timestamp TIMESTAMP_LTZ(3),
  payload BYTES,
  payload_size INT,
  job STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${dlq_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'properties.max.request.size' = '8388608',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-dlq',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'EXCEPT_KEY'
);
