-- Kafka tables of the fraud job (jobs/fraud_detection.py). Placeholders come from FraudConfig.
--
-- clean_events_source: events.clean as the ingest job writes it (Flink's avro-confluent format,
--   schema from the registry), through Vigil's dlq-avro-confluent wrapper (java/vigil-formats): a
--   record that cannot be decoded becomes a row with decode_error and raw_value set instead of
--   failing the job; sql/queries/fraud_inputs.sql sends it to the job's dead-letter topic.
--   Event time = event_time (UTC); row_time is the same, but never null and never more than an
--   hour after the broker appended the record: an undecodable row, or an event from the far future
--   (which would push the watermark past every later event and silence all patterns), gets the
--   epoch, which never moves a watermark, and is refused in fraud_inputs.sql. ${out_of_orderness_s} s
--   of bounded out-of-orderness per partition. No idleness: a silent partition holds the watermark back
--   rather than letting its late events be dropped by the patterns (ADR 0004).
--   Where reading starts and stops (events_range_options; labels_range_options on
--   chargeback_labels_source): from the group's offsets, unbounded, in production; --bounded stops at
--   the end offsets found at start; --start-time/--stop-time read a recorded range by record
--   timestamp (vigil backtest), the labels from --labels-start-time if given.
CREATE TABLE clean_events_source (
  record_key BYTES,
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
  -- when the broker appended the record (events.clean uses LogAppendTime): the start of the
  -- fraud job's detection latency
  appended_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  decode_error STRING METADATA FROM 'value.error' VIRTUAL,
  raw_value BYTES METADATA FROM 'value.raw' VIRTUAL,
  row_time AS CASE WHEN event_time IS NULL
                        OR event_time > CAST(appended_at AS TIMESTAMP(3)) + INTERVAL '1' HOUR
                   THEN TIMESTAMP '1970-01-01 00:00:00' ELSE event_time END,
  WATERMARK FOR row_time AS row_time - INTERVAL '${out_of_orderness_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${clean_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  ${events_range_options}
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- fraud_rules_source: fraud.rules as bytes (compacted; key {"tenant_id": ...}, "*" = defaults).
--   Any client may write anything here, so the job parses and validates every record itself
--   (vigil/fraud_rules.parse_rule_message, sql/queries/fraud_inputs.sql): a refused record goes to
--   the dead-letter topic and the tenant keeps its previous rules; the accepted ones form the
--   versioned table fraud_rules, joined to each event by event time (effective_from). The topic is
--   read whole on a first start. effective_from is parsed here (it is the table's time attribute;
--   the epoch when it is missing or malformed, and such records are refused). Rules change rarely,
--   so the source is marked idle after ${rules_idle_timeout} without records (1 s; 30 s in a bounded
--   run, which reads every rule first and then finishes) and does not hold back the events'
--   watermark; a rule that arrives later applies to the events processed after it.
CREATE TABLE fraud_rules_source (
  record_key BYTES,
  payload BYTES,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  parsed_effective_from AS TRY_CAST(JSON_VALUE(CAST(payload AS STRING), '$$.effective_from') AS TIMESTAMP(3)),
  effective_from AS COALESCE(TRY_CAST(JSON_VALUE(CAST(payload AS STRING), '$$.effective_from') AS TIMESTAMP(3)),
                             TIMESTAMP '1970-01-01 00:00:00'),
  WATERMARK FOR effective_from AS effective_from
) WITH (
  'connector' = 'kafka',
  'topic' = '${rules_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  ${bounded_option}
  'scan.watermark.idle-timeout' = '${rules_idle_timeout}',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- chargeback_labels_source: delayed ground truth for the supervised model (written by payment
--   systems; `vigil generate` writes them too). One record per payment attempt: is_fraud when a
--   chargeback came, false when the payment matured without one. Event time = label_time. Read
--   through dlq-json: unparseable or wrongly typed records become rows with decode_error set, and
--   records with missing or impossible fields are refused in sql/queries/fraud_inputs.sql; both go
--   to the dead-letter topic. A quiet labels topic is marked idle after ${labels_idle_timeout} so
--   it does not hold back the events' watermark; until then it does, which is what makes a replay
--   learn every label at its label time (a label read after the events passed its time is learned
--   on arrival instead).
CREATE TABLE chargeback_labels_source (
  record_key BYTES,
  tenant_id STRING,
  event_id STRING,
  event_time BIGINT,
  label_time BIGINT,
  is_fraud BOOLEAN,
  outcome STRING,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  decode_error STRING METADATA FROM 'value.error' VIRTUAL,
  raw_value BYTES METADATA FROM 'value.raw' VIRTUAL,
  label_ts AS TO_TIMESTAMP_LTZ(COALESCE(label_time, 0), 3),
  WATERMARK FOR label_ts AS label_ts - INTERVAL '${out_of_orderness_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${chargebacks_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  ${labels_range_options}
  'scan.watermark.idle-timeout' = '${labels_idle_timeout}',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'dlq-json',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- fraud_alerts: one record per decided event with a pattern hit or a risk above the alert
--   threshold, exactly-once (Kafka transactions), key tenant_id:entity_id. alert_id is a hash of
--   tenant and triggering event: a replay, a restore and the low-latency path give the same id,
--   so consumers de-duplicate across paths.
-- fraud_scores: the same decision record for every scored payment attempt (model scores, risk,
--   reasons), alert or not: model monitoring, ROC/PR evaluation, downstream analytics.
CREATE TABLE fraud_alerts (
  record_key STRING,
  ${decision_columns}
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

-- fraud_incidents: alerts grouped into incidents (udfs/incidents.py: one tenant's alerts sharing a
--   user, card or device within the incident window), upserted on a compacted topic keyed by the
--   incident id, exactly-once: each alert that joins writes the incident's new version, and a last
--   one with status 'closed' is written when the window ends. incident_id is a hash of the tenant
--   and the opening alert: a replay or a restore rewrites the same ids.
CREATE TABLE fraud_incidents (
  incident_id STRING,
  tenant_id STRING,
  status STRING,
  severity STRING,
  max_score DOUBLE,
  first_seen TIMESTAMP(3),
  last_seen TIMESTAMP(3),
  alert_count BIGINT,
  patterns ARRAY<STRING>,
  entities ARRAY<STRING>,
  alert_ids ARRAY<STRING>,
  opened_by STRING,
  latest_event_id STRING,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (incident_id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${incidents_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-incidents',
  'key.format' = 'raw',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  -- the id in the value too: a consumer of values alone (a sink connector) keeps it
  'value.fields-include' = 'ALL'
);

-- fraud_scores: fraud_alerts' columns and options on its own topic and transactional ids.
CREATE TABLE fraud_scores WITH (
  'topic' = '${scores_topic}',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-scores'
) LIKE fraud_alerts;

-- features_online: the latest features per entity (udfs/fraud_features.py defines them), upsert
--   on a compacted topic keyed tenant_id:entity_type:entity_id, exactly-once. Rows are buffered
--   for up to a second and only the last per key is written, which bounds the write rate of hot
--   entities (a busy merchant) to one record per second.
CREATE TABLE features_online (
  record_key STRING,
  tenant_id STRING,
  entity_type STRING,
  entity_id STRING,
  as_of_event_id STRING,
  as_of TIMESTAMP(3),
  ${feature_columns},
  PRIMARY KEY (record_key) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${features_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-features',
  'sink.buffer-flush.max-rows' = '5000',
  'sink.buffer-flush.interval' = '1 s',
  'key.format' = 'raw',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- fraud_decisions: the low-latency path (docs/adr/0005): every payment attempt decided as soon as
--   it is read, at-least-once and without transactions (visible within milliseconds, not once
--   per checkpoint; a restart can repeat a decision: the alert_id, shared with the exact path,
--   de-duplicates). No batching delay in the producer (linger 0).
CREATE TABLE fraud_decisions (
  record_key STRING,
  alert_id STRING,
  tenant_id STRING,
  event_id STRING,
  user_id STRING,
  amount_usd DOUBLE,
  score DOUBLE,
  reason_codes ARRAY<STRING>,
  anomaly_score DOUBLE,
  supervised_score DOUBLE,
  model_steps BIGINT,
  features STRING,
  appended_at TIMESTAMP(3),
  decided_at TIMESTAMP(3),
  decision_latency_ms BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = '${decisions_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.linger.ms' = '0',
  'sink.delivery-guarantee' = 'at-least-once',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);
