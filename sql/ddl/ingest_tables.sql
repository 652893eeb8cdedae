-- Kafka tables of the ingest job (jobs/ingest.py). Placeholders are filled in from IngestConfig.
--
-- raw_events: events.raw as bytes, exactly as producers wrote them (Confluent wire format, Avro).
--   Decoding happens in the validation UDF so that undecodable bytes reach the DLQ with a reason
--   (a format-level decoder would fail the job or skip them silently).
--   Event time: the Kafka record timestamp (producers set it to event_time; vigil.serde does).
--   Watermarks are per partition, bounded out-of-orderness ${out_of_orderness_s} s.
CREATE TABLE raw_events (
  record_key BYTES,
  payload BYTES,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  proc_time AS PROCTIME(),
  WATERMARK FOR kafka_ts AS kafka_ts - INTERVAL '${out_of_orderness_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${raw_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.max.partition.fetch.bytes' = '4194304',
  'properties.auto.offset.reset' = 'earliest',
  ${offsets_options},
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- clean_events: accepted, de-duplicated events; key tenant_id:user_id keeps per-user order.
-- Exactly-once: Kafka transactions committed on checkpoint completion. The producer batches up
-- to 20 ms / 256 KB per partition (fewer, larger requests for the broker); a checkpoint flushes
-- it anyway, so this adds nothing to the time until a read_committed consumer sees a record.
-- Value: Flink's avro-confluent format. Its Avro schema is derived from these columns and
-- registered under '${clean_topic}-value' on first write; adding a nullable column registers a
-- new, backward-compatible version. Downstream jobs read it with the same format.
CREATE TABLE clean_events (
  record_key STRING,
  event_id STRING,
  event_time TIMESTAMP(3),       -- UTC (the job runs with table.local-time-zone = UTC)
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
  source_offset BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = '${clean_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'properties.linger.ms' = '20',
  'properties.batch.size' = '262144',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-clean',
  -- each clean event to its raw record's partition number: a clean partition keeps one raw
  -- partition's order, whatever partitioner the producers used (java/vigil-formats)
  'sink.partitioner' = 'vigil.flink.sinks.SourcePartitionPartitioner',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);
