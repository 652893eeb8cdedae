-- Vigil's Kafka streams as Flink tables, declared once (vigil/sql_catalog.py renders this file):
-- what analysts query with `vigil sql` or through the SQL Gateway, and what the analytics jobs
-- (sql/analytics/) read. Database `vigil.streams`. The column lists are the ones the jobs write
-- with (sql/ddl/*.sql, jobs/fraud_sql.py), pasted in by the renderer, never copied by hand.
--
-- Decoding never fails a query: values go through Vigil's dlq-* formats (java/vigil-formats), so a
-- record that cannot be decoded is a row with `decode_error` (what failed) and `raw_value` (its
-- bytes) set and the other columns null, instead of an exception that ends the job (or, with
-- Flink's ignore-parse-errors, a record dropped silently). Filter `decode_error IS NULL` for the
-- good rows; the `events` view does.
--
-- Every source reads committed data only (read_committed: the jobs write with transactions) and,
-- in an analyst's session, from the start of the topic (the analytics job starts from its consumer
-- group's offsets instead: ${startup_mode} here). Change it per query with a hint:
--   SELECT * FROM events_clean /*+ OPTIONS('scan.startup.mode' = 'latest-offset') */;

-- events_clean: events.clean as the ingest job writes it (avro-confluent, schema in the registry).
--   Event time row_time = event_time, ${out_of_orderness_s} s of bounded disorder per partition; an
--   undecodable row, or an event more than an hour after its append time, gets the epoch (it never
--   moves the watermark). appended_at = when the broker appended it (LogAppendTime).
--   Example: {"event_id": "e-1f..", "event_time": 2026-12-03 10:15:02.120, "tenant_id": "t007",
--   "merchant_id": "m0042", "user_id": "u0001234", "event_type": "payment_result", "status": "approved",
--   "amount": 59.9000, "currency": "EUR", ...}
CREATE TABLE events_clean (
  ${clean_columns}
) WITH (
  'connector' = 'kafka',
  'topic' = '${clean_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  ${range_options}
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- events: the decodable events of events_clean with amount_usd, the amount in US dollars at the
--   project's reference rates (vigil/event_model.UNITS_PER_USD), exact: DECIMAL(32,16).
CREATE VIEW events AS
SELECT *, amount * ${usd_per_unit} AS amount_usd
FROM events_clean
WHERE decode_error IS NULL;

-- events_dlq: every record the ingest job rejected (JSON, one layout for every job's dead letters:
--   sql/ddl/dead_letter_table.sql), with rejected_at, when it was written (its Kafka timestamp).
--   Example: {"reason": "invalid_currency", "detail": "XYZ", "tenant_id": "t007", "event_id": "e-9..",
--   "source_topic": "events.raw", "source_partition": 2, "source_offset": 1234, "payload": "<base64>", ...}
CREATE TABLE events_dlq (
  ${dlq_columns},
  rejected_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  decode_error STRING METADATA FROM 'value.error' VIRTUAL,
  raw_value BYTES METADATA FROM 'value.raw' VIRTUAL,
  WATERMARK FOR rejected_at AS rejected_at - INTERVAL '${out_of_orderness_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${dlq_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'properties.max.partition.fetch.bytes' = '8388608',
  ${range_options}
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'dlq-json',
  'value.dlq-json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- fraud_alerts: one record per event the fraud job alerted on (key tenant_id:entity_id):
--   alert_id (deterministic), score, reason_codes, evidence (JSON), model scores, latency.
CREATE TABLE fraud_alerts (
  ${alert_columns},
  appended_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  decode_error STRING METADATA FROM 'value.error' VIRTUAL,
  raw_value BYTES METADATA FROM 'value.raw' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = '${alerts_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  ${range_options}
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- fraud_scores: the same decision record for every payment attempt, alert or not.
CREATE TABLE fraud_scores WITH ('topic' = '${scores_topic}') LIKE fraud_alerts;

-- fraud_incidents: the latest version of each incident (fraud.incidents is an upsert topic keyed by
--   incident_id). Flink keeps every incident's latest version in state to read it as a table:
--   fraud_incident_versions is the cheaper stream of every version as written.
CREATE TABLE fraud_incidents (
  ${incident_columns},
  PRIMARY KEY (incident_id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${incidents_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'raw',
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'ALL'
);

CREATE TABLE fraud_incident_versions (
  ${incident_columns},
  decode_error STRING METADATA FROM 'value.error' VIRTUAL,
  raw_value BYTES METADATA FROM 'value.raw' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = '${incidents_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  ${range_options}
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}'
);

-- features_online: the latest features of each user, card, device and merchant (upsert topic keyed
--   tenant_id:entity_type:entity_id); features_online_versions: every version as written.
CREATE TABLE features_online (
  ${feature_table_columns},
  PRIMARY KEY (record_key) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${features_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'key.format' = 'raw',
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);

CREATE TABLE features_online_versions (
  ${feature_table_columns},
  decode_error STRING METADATA FROM 'value.error' VIRTUAL,
  raw_value BYTES METADATA FROM 'value.raw' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = '${features_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  ${range_options}
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'dlq-avro-confluent',
  'value.dlq-avro-confluent.url' = '${schema_registry_url}',
  'value.fields-include' = 'EXCEPT_KEY'
);
