-- V003: row-level security helper and time-partition maintenance for analytics tables.
--
-- Analytics tables are range-partitioned by window_start (minute tables by day, hour tables by
-- month, day tables by year: partitions of a few million rows at 10k merchants). Each table
-- has a DEFAULT partition so that a row outside the prepared range (a replay of old events, a
-- clock far ahead) is stored instead of failing Flink's sink and restarting the job.
--
-- serving_private.maintain_partitions() (run by `vigil infra up`, `vigil serving retention`, or
-- a scheduler, as the admin) per table of serving_private.partitioned_tables:
--   1. creates the partitions from the retention cutoff to `premake` periods ahead, attaching
--      them (SHARE UPDATE EXCLUSIVE on the parent: readers and Flink's writes carry on) after
--      moving any rows of that range out of the DEFAULT partition;
--   2. drops partitions entirely older than the cutoff (now - retention), and deletes expired
--      rows from the DEFAULT partition.
-- Retention is therefore "at least `retention`": a partition goes when its newest possible
-- row is older than the cutoff. Lock waits are bounded (lock_timeout 5 s): a busy table is
-- retried on the next run rather than blocking the API.

SET LOCAL ROLE vigil_owner;

CREATE TABLE serving_private.partitioned_tables (
    table_name text     PRIMARY KEY,          -- schema-qualified, e.g. analytics.sales_minute
    unit       text     NOT NULL CHECK (unit IN ('day', 'month', 'year')),
    retention  interval NOT NULL CHECK (retention > interval '0'),
    premake    integer  NOT NULL DEFAULT 2 CHECK (premake BETWEEN 1 AND 60)
);
COMMENT ON TABLE serving_private.partitioned_tables IS
    'Partitioning unit and retention of each analytics table (vigil serving retention --set)';

-- Row-level security of one analytics table or partition: enabled and forced (the owner too),
-- the API role sees its tenant's rows only, the writer all (it upserts any tenant's rows).
-- Partitions get the same policies, though only the parent is granted to anyone: a direct
-- query on a partition is refused, and filtered should a grant ever appear.
CREATE FUNCTION serving_private.secure_table(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %s', tbl);
    EXECUTE format('CREATE POLICY tenant_isolation ON %s FOR SELECT TO vigil_api'
                   ' USING (tenant_id = (SELECT serving.current_tenant()))', tbl);
    EXECUTE format('DROP POLICY IF EXISTS writer_upsert ON %s', tbl);
    EXECUTE format('CREATE POLICY writer_upsert ON %s FOR ALL TO vigil_writer USING (true) WITH CHECK (true)', tbl);
END
$$;

CREATE FUNCTION serving_private.partition_bounds(part regclass, OUT lower_bound timestamp, OUT upper_bound timestamp)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m[1]::timestamp, m[2]::timestamp
      FROM (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS m
              FROM pg_class c WHERE c.oid = part) b
$$;

CREATE FUNCTION serving_private.attach_partition(parent regclass, unit text, lo timestamp) RETURNS text
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
    EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part, parent);
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

CREATE FUNCTION serving_private.maintain_partitions(at timestamp DEFAULT (now() AT TIME ZONE 'UTC'))
RETURNS TABLE (table_name text, action text, partition_name text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cfg    record;
    part   record;
    cutoff timestamp;
    period timestamp;
    step   interval;
    n      bigint;
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    FOR cfg IN SELECT * FROM serving_private.partitioned_tables ORDER BY 1 LOOP
        cutoff := at - cfg.retention;
        step := ('1 ' || cfg.unit)::interval;
        -- 1. partitions from the cutoff's period to `premake` periods ahead
        period := date_trunc(cfg.unit, cutoff);
        WHILE period < date_trunc(cfg.unit, at) + cfg.premake * step LOOP
            IF NOT EXISTS (
                SELECT 1 FROM pg_inherits i
                 CROSS JOIN LATERAL serving_private.partition_bounds(i.inhrelid) b
                 WHERE i.inhparent = cfg.table_name::regclass
                   AND b.lower_bound < period + step AND b.upper_bound > period) THEN
                table_name := cfg.table_name;
                action := 'created';
                partition_name := serving_private.attach_partition(cfg.table_name::regclass, cfg.unit, period);
                RETURN NEXT;
            END IF;
            period := period + step;
        END LOOP;
        -- 2. whole partitions older than the cutoff, and expired rows of the default partition
        FOR part IN
            SELECT i.inhrelid::regclass AS rel, c.relname, b.upper_bound
              FROM pg_inherits i
              JOIN pg_class c ON c.oid = i.inhrelid
             CROSS JOIN LATERAL serving_private.partition_bounds(i.inhrelid) b
             WHERE i.inhparent = cfg.table_name::regclass
             ORDER BY b.upper_bound
        LOOP
            IF part.upper_bound IS NULL THEN          -- the DEFAULT partition
                EXECUTE format('DELETE FROM %s WHERE window_start < $1', part.rel) USING cutoff;
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n > 0 THEN
                    table_name := cfg.table_name;
                    action := format('deleted %s expired rows', n);
                    partition_name := part.relname;
                    RETURN NEXT;
                END IF;
            ELSIF part.upper_bound <= cutoff THEN
                EXECUTE format('DROP TABLE %s', part.rel);
                table_name := cfg.table_name;
                action := 'dropped';
                partition_name := part.relname;
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- Unpartitioned mirrors (their keys, incident_id and alert_id, do not contain a time) expire by
-- DELETE on their own time column.
CREATE TABLE serving_private.expiring_tables (
    table_name  text     PRIMARY KEY,
    time_column text     NOT NULL,
    retention   interval NOT NULL CHECK (retention > interval '0')
);

CREATE FUNCTION serving_private.expire_rows(at timestamp DEFAULT (now() AT TIME ZONE 'UTC'))
RETURNS TABLE (table_name text, deleted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cfg record;
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    FOR cfg IN SELECT * FROM serving_private.expiring_tables ORDER BY 1 LOOP
        EXECUTE format('DELETE FROM %s WHERE %I < $1', cfg.table_name::regclass, cfg.time_column)
            USING at - cfg.retention;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        table_name := cfg.table_name;
        RETURN NEXT;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION serving_private.secure_table(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION serving_private.partition_bounds(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION serving_private.attach_partition(regclass, text, timestamp) FROM PUBLIC;
REVOKE ALL ON FUNCTION serving_private.maintain_partitions(timestamp) FROM PUBLIC;
REVOKE ALL ON FUNCTION serving_private.expire_rows(timestamp) FROM PUBLIC;
