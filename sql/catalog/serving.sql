-- The PostgreSQL serving tables (schema `analytics`, migrations in sql/serving/migrations/) as Flink
-- tables over the JDBC connector, in database `vigil.analytics`: the analytics jobs write them
-- (sql/analytics/), analysts can read them from the SQL client too (a bounded scan).
-- A table with a PRIMARY KEY is written as an upsert (INSERT ... ON CONFLICT (key) DO UPDATE), so
-- a replay after a restore rewrites the same rows: exactly-once in effect (docs/adr/0011).
-- Rows are buffered and written every ${flush_interval} or ${flush_rows} rows, and at each
-- checkpoint; only the last row of a key in a buffer is written. Timestamps are UTC.
-- Credentials: the writer role's (vigil_writer), from the local PostgreSQL's state folder.

-- sales_minute / sales_hour / sales_day: per tenant and merchant, and per tenant with
--   merchant_id '*', per window: funnel counts, payments, orders, GMV in USD, refunds, chargebacks,
--   distinct users (sql/analytics/sales.sql).
CREATE TABLE sales_minute (
  tenant_id STRING,
  merchant_id STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  events BIGINT,
  page_views BIGINT,
  add_to_carts BIGINT,
  checkouts BIGINT,
  payment_attempts BIGINT,
  payments_approved BIGINT,
  payments_declined BIGINT,
  approval_rate DOUBLE,
  orders BIGINT,
  gmv_usd DECIMAL(20, 4),
  avg_basket_usd DECIMAL(20, 4),
  refunds BIGINT,
  refund_usd DECIMAL(20, 4),
  chargebacks BIGINT,
  distinct_users BIGINT,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (tenant_id, merchant_id, window_start) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${jdbc_url}',
  'table-name' = 'analytics.sales_minute',
  'username' = '${jdbc_user}',
  'password' = '${jdbc_password}',
  'sink.buffer-flush.max-rows' = '${flush_rows}',
  'sink.buffer-flush.interval' = '${flush_interval}',
  'sink.max-retries' = '5'
);
CREATE TABLE sales_hour WITH ('table-name' = 'analytics.sales_hour') LIKE sales_minute;
CREATE TABLE sales_day WITH ('table-name' = 'analytics.sales_day') LIKE sales_minute;

-- quality_minute / quality_hour / quality_day: rejections per tenant ('?' when unknown) and reason,
--   by when they were rejected (sql/analytics/quality.sql).
CREATE TABLE quality_minute (
  tenant_id STRING,
  reason STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  rejections BIGINT,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (tenant_id, reason, window_start) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${jdbc_url}',
  'table-name' = 'analytics.quality_minute',
  'username' = '${jdbc_user}',
  'password' = '${jdbc_password}',
  'sink.buffer-flush.max-rows' = '${flush_rows}',
  'sink.buffer-flush.interval' = '${flush_interval}',
  'sink.max-retries' = '5'
);
CREATE TABLE quality_hour WITH ('table-name' = 'analytics.quality_hour') LIKE quality_minute;
CREATE TABLE quality_day WITH ('table-name' = 'analytics.quality_day') LIKE quality_minute;

-- products_hour / products_day: per tenant and product, views, carts and checkouts
--   (sql/analytics/products.sql); top products and categories are ORDER BY ... LIMIT at query time.
CREATE TABLE products_hour (
  tenant_id STRING,
  product_id STRING,
  category STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  `views` BIGINT,  -- VIEWS is a keyword of Flink SQL: quoted
  carts BIGINT,
  checkouts BIGINT,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (tenant_id, product_id, window_start) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${jdbc_url}',
  'table-name' = 'analytics.products_hour',
  'username' = '${jdbc_user}',
  'password' = '${jdbc_password}',
  'sink.buffer-flush.max-rows' = '${flush_rows}',
  'sink.buffer-flush.interval' = '${flush_interval}',
  'sink.max-retries' = '5'
);
CREATE TABLE products_day WITH ('table-name' = 'analytics.products_day') LIKE products_hour;

-- fraud_incidents: mirror of fraud.incidents (the latest version per incident). patterns and
--   entities are PostgreSQL text[]: the JDBC connector cannot write arrays, so they are sent as
--   array literals ('{"a","b"}') that PostgreSQL casts (the URL's stringtype=unspecified).
CREATE TABLE fraud_incidents (
  incident_id STRING,
  tenant_id STRING,
  status STRING,
  severity STRING,
  max_score DOUBLE,
  first_seen TIMESTAMP(3),
  last_seen TIMESTAMP(3),
  alert_count BIGINT,
  patterns STRING,
  entities STRING,
  opened_by STRING,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (incident_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${jdbc_url}',
  'table-name' = 'analytics.fraud_incidents',
  'username' = '${jdbc_user}',
  'password' = '${jdbc_password}',
  'sink.buffer-flush.max-rows' = '${flush_rows}',
  'sink.buffer-flush.interval' = '${flush_interval}',
  'sink.max-retries' = '5'
);

-- fraud_alerts: mirror of fraud.alerts; reasons = the reason codes as a JSON array.
CREATE TABLE fraud_alerts (
  alert_id STRING,
  tenant_id STRING,
  event_id STRING,
  `pattern` STRING,  -- PATTERN is a keyword of Flink SQL (MATCH_RECOGNIZE): quoted
  entity_type STRING,
  entity_id STRING,
  score DOUBLE,
  severity STRING,
  event_time TIMESTAMP(3),
  reasons STRING,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (alert_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${jdbc_url}',
  'table-name' = 'analytics.fraud_alerts',
  'username' = '${jdbc_user}',
  'password' = '${jdbc_password}',
  'sink.buffer-flush.max-rows' = '${flush_rows}',
  'sink.buffer-flush.interval' = '${flush_interval}',
  'sink.max-retries' = '5'
);

-- entity_features: mirror of features.online; features is a JSON object (jsonb in PostgreSQL).
CREATE TABLE entity_features (
  tenant_id STRING,
  entity_type STRING,
  entity_id STRING,
  as_of TIMESTAMP(3),
  as_of_event_id STRING,
  features STRING,
  updated_at TIMESTAMP(3),
  PRIMARY KEY (tenant_id, entity_type, entity_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${jdbc_url}',
  'table-name' = 'analytics.entity_features',
  'username' = '${jdbc_user}',
  'password' = '${jdbc_password}',
  'sink.buffer-flush.max-rows' = '${flush_rows}',
  'sink.buffer-flush.interval' = '${flush_interval}',
  'sink.max-retries' = '5'
);
