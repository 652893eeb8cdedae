-- V004: the analytics tables of the serving contract (/tmp/i13/contract.md, ADR 0010).
--
-- Written by Flink's JDBC sink as upserts on the natural primary keys (a replay rewrites the
-- same rows), read by the HTTP API under row-level security. Timestamps are timestamp(3)
-- without time zone, UTC by convention (Flink's TIMESTAMP(3)). merchant_id '*' rows are a
-- tenant's totals (distinct users do not add up over merchants).
--
-- Few constraints beyond the keys on purpose: a violated CHECK would fail Flink's sink and
-- restart the job in a loop; validation happens upstream (ingest job).
--
-- Indexes, each for a documented query (vigil/api/queries.py):
--   primary keys (tenant_id, merchant_id|reason|product_id, window_start): a series of one
--     merchant, of the tenant ('*'), of one reason or product over a time range;
--   (tenant_id, window_start) INCLUDE (...): the tenant's rows of a time range across merchants,
--     reasons or products, index-only: top merchants, top products and categories, rejections
--     by reason;
--   fraud: (tenant_id, first_seen), (tenant_id, last_seen), (tenant_id, event_time),
--     (tenant_id, pattern, event_time).

SET LOCAL ROLE vigil_owner;

-- ---------------------------------------------------------------- sales per merchant and tenant

CREATE TABLE analytics.sales_minute (
    tenant_id         text          NOT NULL,
    merchant_id       text          NOT NULL,     -- '*' = the tenant's totals
    window_start      timestamp(3)  NOT NULL,
    window_end        timestamp(3)  NOT NULL,
    events            bigint,                     -- all clean events (denominator of the DLQ rate)
    page_views        bigint,
    add_to_carts      bigint,
    checkouts         bigint,
    payment_attempts  bigint,
    payments_approved bigint,
    payments_declined bigint,
    approval_rate     double precision,           -- approved / (approved + declined), null when none
    orders            bigint,                     -- approved payment_result events
    gmv_usd           numeric(20, 4),             -- sum of approved payment_result amounts in USD
    avg_basket_usd    numeric(20, 4),             -- gmv_usd / orders, null when no orders
    refunds           bigint,
    refund_usd        numeric(20, 4),
    chargebacks       bigint,
    distinct_users    bigint,
    updated_at        timestamp(3)  DEFAULT (now() AT TIME ZONE 'UTC'),   -- when Flink wrote the row
    PRIMARY KEY (tenant_id, merchant_id, window_start)
) PARTITION BY RANGE (window_start);
CREATE TABLE analytics.sales_hour (LIKE analytics.sales_minute INCLUDING DEFAULTS INCLUDING INDEXES)
    PARTITION BY RANGE (window_start);
CREATE TABLE analytics.sales_day (LIKE analytics.sales_minute INCLUDING DEFAULTS INCLUDING INDEXES)
    PARTITION BY RANGE (window_start);

-- ---------------------------------------------------------------- data quality (events.dlq)

CREATE TABLE analytics.quality_minute (
    tenant_id    text          NOT NULL,          -- '?' when the dead letter has no tenant
    reason       text          NOT NULL,
    window_start timestamp(3)  NOT NULL,
    window_end   timestamp(3)  NOT NULL,
    rejections   bigint,
    updated_at   timestamp(3)  DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (tenant_id, reason, window_start)
) PARTITION BY RANGE (window_start);
CREATE TABLE analytics.quality_hour (LIKE analytics.quality_minute INCLUDING DEFAULTS INCLUDING INDEXES)
    PARTITION BY RANGE (window_start);
CREATE TABLE analytics.quality_day (LIKE analytics.quality_minute INCLUDING DEFAULTS INCLUDING INDEXES)
    PARTITION BY RANGE (window_start);

-- ---------------------------------------------------------------- products

CREATE TABLE analytics.products_hour (
    tenant_id    text          NOT NULL,
    product_id   text          NOT NULL,
    category     text,
    window_start timestamp(3)  NOT NULL,
    window_end   timestamp(3)  NOT NULL,
    views        bigint,
    carts        bigint,
    checkouts    bigint,
    updated_at   timestamp(3)  DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (tenant_id, product_id, window_start)
) PARTITION BY RANGE (window_start);
CREATE TABLE analytics.products_day (LIKE analytics.products_hour INCLUDING DEFAULTS INCLUDING INDEXES)
    PARTITION BY RANGE (window_start);

-- ---------------------------------------------------------------- fraud mirrors and features

CREATE TABLE analytics.fraud_incidents (          -- mirror of the fraud.incidents upsert topic
    incident_id text PRIMARY KEY,
    tenant_id   text NOT NULL,
    status      text,
    severity    text,
    max_score   double precision,
    first_seen  timestamp(3),
    last_seen   timestamp(3),
    alert_count bigint,
    patterns    text[],
    entities    text[],
    opened_by   text,
    updated_at  timestamp(3) DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE TABLE analytics.fraud_alerts (             -- mirror of fraud.alerts
    alert_id    text PRIMARY KEY,
    tenant_id   text NOT NULL,
    event_id    text,
    pattern     text,
    entity_type text,
    entity_id   text,
    score       double precision,
    severity    text,
    event_time  timestamp(3),
    reasons     text,                             -- JSON text as the fraud job wrote it
    updated_at  timestamp(3) DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE TABLE analytics.entity_features (          -- mirror of features.online
    tenant_id      text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text NOT NULL,
    as_of          timestamp(3),
    as_of_event_id text,
    features       jsonb,
    updated_at     timestamp(3) DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (tenant_id, entity_type, entity_id)
);

-- ---------------------------------------------------------------- indexes for the API's queries

CREATE INDEX sales_minute_tenant_time ON analytics.sales_minute (tenant_id, window_start)
    INCLUDE (merchant_id, orders, gmv_usd);
CREATE INDEX sales_hour_tenant_time ON analytics.sales_hour (tenant_id, window_start)
    INCLUDE (merchant_id, orders, gmv_usd);
CREATE INDEX sales_day_tenant_time ON analytics.sales_day (tenant_id, window_start)
    INCLUDE (merchant_id, orders, gmv_usd);
CREATE INDEX quality_minute_tenant_time ON analytics.quality_minute (tenant_id, window_start) INCLUDE (reason, rejections);
CREATE INDEX quality_hour_tenant_time ON analytics.quality_hour (tenant_id, window_start) INCLUDE (reason, rejections);
CREATE INDEX quality_day_tenant_time ON analytics.quality_day (tenant_id, window_start) INCLUDE (reason, rejections);
CREATE INDEX products_hour_tenant_time ON analytics.products_hour (tenant_id, window_start)
    INCLUDE (product_id, category, views, carts, checkouts);
CREATE INDEX products_day_tenant_time ON analytics.products_day (tenant_id, window_start)
    INCLUDE (product_id, category, views, carts, checkouts);
CREATE INDEX fraud_incidents_tenant_first_seen ON analytics.fraud_incidents (tenant_id, first_seen);
CREATE INDEX fraud_incidents_tenant_last_seen ON analytics.fraud_incidents (tenant_id, last_seen);
CREATE INDEX fraud_alerts_tenant_time ON analytics.fraud_alerts (tenant_id, event_time);
CREATE INDEX fraud_alerts_tenant_pattern_time ON analytics.fraud_alerts (tenant_id, pattern, event_time);

-- ---------------------------------------------------------------- partitions, security, grants

CREATE TABLE analytics.sales_minute_default PARTITION OF analytics.sales_minute DEFAULT;
CREATE TABLE analytics.sales_hour_default PARTITION OF analytics.sales_hour DEFAULT;
CREATE TABLE analytics.sales_day_default PARTITION OF analytics.sales_day DEFAULT;
CREATE TABLE analytics.quality_minute_default PARTITION OF analytics.quality_minute DEFAULT;
CREATE TABLE analytics.quality_hour_default PARTITION OF analytics.quality_hour DEFAULT;
CREATE TABLE analytics.quality_day_default PARTITION OF analytics.quality_day DEFAULT;
CREATE TABLE analytics.products_hour_default PARTITION OF analytics.products_hour DEFAULT;
CREATE TABLE analytics.products_day_default PARTITION OF analytics.products_day DEFAULT;

-- Retention (change with `vigil serving retention --set TABLE=DAYS`): minute rows a week,
-- hourly rows 13 months (a year-on-year month), daily rows 5 years.
INSERT INTO serving_private.partitioned_tables (table_name, unit, retention, premake) VALUES
    ('analytics.sales_minute',   'day',   interval '7 days',    3),
    ('analytics.sales_hour',     'month', interval '400 days',  2),
    ('analytics.sales_day',      'year',  interval '1830 days', 1),
    ('analytics.quality_minute', 'day',   interval '7 days',    3),
    ('analytics.quality_hour',   'month', interval '400 days',  2),
    ('analytics.quality_day',    'year',  interval '1830 days', 1),
    ('analytics.products_hour',  'month', interval '400 days',  2),
    ('analytics.products_day',   'year',  interval '1830 days', 1);
INSERT INTO serving_private.expiring_tables (table_name, time_column, retention) VALUES
    ('analytics.fraud_alerts',    'event_time', interval '90 days'),
    ('analytics.fraud_incidents', 'last_seen',  interval '400 days'),
    ('analytics.entity_features', 'as_of',      interval '30 days');

DO $secure$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN
        SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')
    LOOP
        PERFORM serving_private.secure_table(tbl);
    END LOOP;
END
$secure$;

-- Only the parents are granted: partitions are reached through them.
GRANT SELECT ON analytics.sales_minute, analytics.sales_hour, analytics.sales_day,
                analytics.quality_minute, analytics.quality_hour, analytics.quality_day,
                analytics.products_hour, analytics.products_day,
                analytics.fraud_incidents, analytics.fraud_alerts, analytics.entity_features
    TO vigil_api;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON analytics.sales_minute, analytics.sales_hour, analytics.sales_day,
       analytics.quality_minute, analytics.quality_hour, analytics.quality_day,
       analytics.products_hour, analytics.products_day,
       analytics.fraud_incidents, analytics.fraud_alerts, analytics.entity_features
    TO vigil_writer;

COMMENT ON TABLE analytics.sales_minute IS 'Per tenant and merchant (''*'' = tenant totals) per minute: funnel, payments, GMV, refunds (Flink, upsert)';
COMMENT ON TABLE analytics.sales_hour IS 'As sales_minute, per hour';
COMMENT ON TABLE analytics.sales_day IS 'As sales_minute, per UTC day';
COMMENT ON TABLE analytics.quality_minute IS 'Rejected records (events.dlq) per tenant and reason per minute';
COMMENT ON TABLE analytics.quality_hour IS 'As quality_minute, per hour';
COMMENT ON TABLE analytics.quality_day IS 'As quality_minute, per UTC day';
COMMENT ON TABLE analytics.products_hour IS 'Product views, carts and checkouts per tenant per hour';
COMMENT ON TABLE analytics.products_day IS 'As products_hour, per UTC day';
COMMENT ON TABLE analytics.fraud_incidents IS 'Latest version of each fraud incident (fraud.incidents)';
COMMENT ON TABLE analytics.fraud_alerts IS 'Fraud alerts (fraud.alerts)';
COMMENT ON TABLE analytics.entity_features IS 'Latest online features per entity (features.online)';
