-- V006: index-only reads for the heaviest documented queries (bench/serving_explain.py).
--
-- Alerts and incidents by pattern read a tenant's rows of a day: with the pattern(s) in the
-- index, an index-only scan replaces a bitmap heap scan over one heap page per alert.
-- Index-only scans need the visibility map, which autovacuum sets; its defaults wait for 20 %
-- of a table to change, so a busy partition's pages would mostly read the heap. Analytics
-- partitions and the fraud mirrors get autovacuum at 2-5 % of changes (inserts too, which is
-- what an append-mostly partition sees), new partitions from birth (attach_partition).
--
-- The index builds lock the two mirrors against writes while they run (seconds at a million
-- alerts); a migration on a large production table would build CONCURRENTLY outside a
-- transaction instead (ADR 0010).

CREATE FUNCTION serving_private.vacuum_settings() RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT 'autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05,'
           ' autovacuum_analyze_scale_factor = 0.05'
$$;
REVOKE ALL ON FUNCTION serving_private.vacuum_settings() FROM PUBLIC;
ALTER FUNCTION serving_private.vacuum_settings() OWNER TO vigil_owner;

CREATE OR REPLACE FUNCTION serving_private.attach_partition(parent regclass, unit text, lo timestamp) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hi       timestamp := lo + ('1 ' || unit)::interval;
    rel      text := (SELECT relname FROM pg_class WHERE oid = parent);
    nsp      text := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent);
    name     text := rel || '_p' || to_char(lo, CASE unit WHEN 'day' THEN 'YYYYMMDD' WHEN 'month' THEN 'YYYYMM' ELSE 'YYYY' END);
    part     text := format('%I.%I', nsp, name);
    dflt     text := format('%I.%I', nsp, rel || '_default');
    moved    bigint := 0;
BEGIN
    EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE) WITH (%s)',
                   part, parent, serving_private.vacuum_settings());
    EXECUTE format('ALTER TABLE %s OWNER TO vigil_owner', part);
    -- Rows of this range that arrived before the partition existed sit in the DEFAULT
    -- partition, which would make the attach fail: move them over first.
    IF to_regclass(dflt) IS NOT NULL THEN
        EXECUTE format('WITH gone AS (DELETE FROM %s WHERE window_start >= $1 AND window_start < $2 RETURNING *)'
                       ' INSERT INTO %s SELECT * FROM gone', dflt, part) USING lo, hi;
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    PERFORM serving_private.secure_table(part::regclass);
    RETURN name || CASE WHEN moved > 0 THEN format(' (%s rows moved from the default partition)', moved) ELSE '' END;
END
$$;

DO $vacuum$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN
        SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'analytics' AND c.relkind = 'r'       -- partitions and plain tables
    LOOP
        EXECUTE format('ALTER TABLE %s SET (%s)', tbl, serving_private.vacuum_settings());
    END LOOP;
END
$vacuum$;

SET LOCAL ROLE vigil_owner;
CREATE INDEX fraud_alerts_tenant_time_pattern ON analytics.fraud_alerts (tenant_id, event_time) INCLUDE (pattern);
DROP INDEX analytics.fraud_alerts_tenant_time;
CREATE INDEX fraud_incidents_tenant_first_seen_patterns ON analytics.fraud_incidents (tenant_id, first_seen)
    INCLUDE (patterns);
DROP INDEX analytics.fraud_incidents_tenant_first_seen;
