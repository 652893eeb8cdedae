-- V001: the roles and schemas of the serving database (ADR 0010).
--
-- Roles are cluster-wide, so this is written to run again in every database of the cluster
-- (a test database, a benchmark database) without failing: created when missing, their
-- attributes re-asserted every time. Passwords are not here: vigil/serving/provision.py sets
-- them from the 0600 credentials file after the migrations.
--
--   vigil_owner   NOLOGIN; owns the schemas, tables and SECURITY DEFINER functions
--   vigil_writer  LOGIN; Flink's JDBC sink: upserts into analytics.* (a policy lets it see all rows)
--   vigil_api     LOGIN; the HTTP API: SELECT only, NOBYPASSRLS, read-only transactions,
--                 sees a tenant's rows only after serving.authenticate(api_key)
--   vigil_admin   the bootstrap superuser (initdb -U), runs migrations and maintenance

DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['vigil_owner', 'vigil_writer', 'vigil_api'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;   -- another database's migration created it a moment ago
            END;
        END IF;
    END LOOP;
END
$roles$;

ALTER ROLE vigil_owner  NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE vigil_writer LOGIN   NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE vigil_api    LOGIN   NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
                        CONNECTION LIMIT 64;
-- The API only reads. What refuses its writes is the missing grants; read-only transactions by
-- default are a second guard against a bug in the API (a session could lift them, not the grants).
ALTER ROLE vigil_api SET default_transaction_read_only = on;
ALTER ROLE vigil_api SET statement_timeout = '10s';
ALTER ROLE vigil_api SET idle_in_transaction_session_timeout = '30s';

-- Only the roles named here may connect, and nobody but the owner may create temporary
-- objects (a temporary function or table can shadow a name in an unqualified query).
DO $db$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO vigil_writer, vigil_api', current_database());
END
$db$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA analytics AUTHORIZATION vigil_owner;         -- the aggregates Flink writes
CREATE SCHEMA serving AUTHORIZATION vigil_owner;           -- what the API may call
CREATE SCHEMA serving_private AUTHORIZATION vigil_owner;   -- keys, secrets, maintenance: nobody else
COMMENT ON SCHEMA analytics IS 'Aggregates written by Flink (vigil_writer), read by the API under row-level security';
COMMENT ON SCHEMA serving IS 'Functions the API role calls: authenticate(api_key), current_tenant()';
COMMENT ON SCHEMA serving_private IS 'API key hashes, the tenant-context secret, partition maintenance';

GRANT USAGE ON SCHEMA analytics TO vigil_writer, vigil_api;
GRANT USAGE ON SCHEMA serving TO vigil_api;

-- Functions are executable by PUBLIC unless revoked; the owner's new functions are not.
ALTER DEFAULT PRIVILEGES FOR ROLE vigil_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- HMAC and random bytes for the tenant context (V002), in the private schema: the API role
-- cannot even name them.
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA serving_private;
