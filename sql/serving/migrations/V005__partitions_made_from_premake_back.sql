-- V005: maintain_partitions() makes partitions from `premake` periods back, not from the
-- retention cutoff. On a fresh database the cutoff rule made 86 partitions, most of them for
-- months and years before the first row (2 s per new database, which the tests create often);
-- older rows, if a replay ever brings them, land in the DEFAULT partition and expire from it
-- like any other. In steady state nothing changes: partitions made ahead stay until they expire,
-- so the whole retention window is partitioned.

CREATE OR REPLACE FUNCTION serving_private.maintain_partitions(at timestamp DEFAULT (now() AT TIME ZONE 'UTC'))
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
        -- 1. partitions from `premake` periods back (not from the cutoff: a fresh database
        --    would otherwise make years of empty partitions) to `premake` periods ahead
        period := greatest(date_trunc(cfg.unit, cutoff), date_trunc(cfg.unit, at) - cfg.premake * step);
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
