-- V002: API keys and the tenant context that row-level security trusts (ADR 0010, section 3).
--
-- A request's transaction calls serving.authenticate(api_key). The function (SECURITY DEFINER,
-- owned by vigil_owner) finds the key's tenant by the SHA-256 of the key and sets two
-- transaction-local settings: vigil.tenant_id and vigil.tenant_mac, an HMAC of
-- (tenant, backend pid, transaction start) under a secret only vigil_owner can read.
-- Policies compare tenant_id with serving.current_tenant(), which returns the tenant only when
-- the MAC verifies. Anyone can SET vigil.tenant_id (custom settings are user-settable), but
-- without the secret nobody can make a MAC for it: a forged, copied or stale context gives
-- NULL, which matches no row. The context dies with the transaction (set_config(..., true)),
-- so a pooled connection carries nothing over to the next request.

SET LOCAL ROLE vigil_owner;

CREATE TABLE serving_private.api_keys (
    key_id     text        PRIMARY KEY,                 -- public part of the key, for listing and revoking
    tenant_id  text        NOT NULL CHECK (tenant_id <> '' AND length(tenant_id) <= 200),
    key_hash   bytea       NOT NULL UNIQUE CHECK (length(key_hash) = 32),   -- sha256 of the whole key
    label      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
COMMENT ON TABLE serving_private.api_keys IS
    'Tenant API keys: only the SHA-256 of each key is stored (keys are 256-bit random, so a fast hash suffices)';
CREATE INDEX api_keys_tenant ON serving_private.api_keys (tenant_id);

CREATE TABLE serving_private.context_secret (
    id     integer PRIMARY KEY CHECK (id = 1),
    secret bytea   NOT NULL CHECK (length(secret) >= 32)
);
-- Made here, in the database, never seen by any client; per database.
INSERT INTO serving_private.context_secret VALUES (1, serving_private.gen_random_bytes(32));

-- The MAC binding a tenant to this backend and this transaction. Not executable by anyone but
-- its owner: the API role calling it could mint a context for any tenant.
CREATE FUNCTION serving_private.context_mac(tenant text) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT serving_private.hmac(
        convert_to(tenant || '|' || pg_backend_pid()::text || '|'
                   || extract(epoch FROM transaction_timestamp())::text, 'UTF8'),
        (SELECT secret FROM serving_private.context_secret WHERE id = 1),
        'sha256')
$$;
REVOKE ALL ON FUNCTION serving_private.context_mac(text) FROM PUBLIC;

CREATE FUNCTION serving.authenticate(api_key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant text;
BEGIN
    SELECT k.tenant_id INTO tenant
      FROM serving_private.api_keys k
     WHERE k.key_hash = sha256(convert_to(coalesce(api_key, ''), 'UTF8'))
       AND k.revoked_at IS NULL;
    IF tenant IS NULL THEN
        -- 28P01: the API answers 401. The key itself is never part of an error message.
        RAISE EXCEPTION 'invalid or revoked API key' USING ERRCODE = 'invalid_password';
    END IF;
    PERFORM set_config('vigil.tenant_id', tenant, true);
    PERFORM set_config('vigil.tenant_mac', encode(serving_private.context_mac(tenant), 'hex'), true);
    RETURN tenant;
END
$$;
REVOKE ALL ON FUNCTION serving.authenticate(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION serving.authenticate(text) TO vigil_api;

-- The tenant of this transaction, or NULL (no rows) when the context is missing or forged.
-- Policies call it as (SELECT serving.current_tenant()): one evaluation per query, not per row.
CREATE FUNCTION serving.current_tenant() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant  text  := current_setting('vigil.tenant_id', true);
    claimed bytea;
    secret  bytea;
BEGIN
    IF tenant IS NULL OR tenant = '' THEN
        RETURN NULL;
    END IF;
    BEGIN
        claimed := decode(current_setting('vigil.tenant_mac', true), 'hex');
    EXCEPTION WHEN others THEN
        RETURN NULL;   -- not hex: forged
    END;
    IF claimed IS NULL THEN
        RETURN NULL;
    END IF;
    -- Compare MACs of the MACs, not the MACs: the comparison's time then tells nothing about
    -- how much of a guessed MAC was right.
    SELECT c.secret INTO secret FROM serving_private.context_secret c WHERE c.id = 1;
    IF serving_private.hmac(claimed, secret, 'sha256')
       = serving_private.hmac(serving_private.context_mac(tenant), secret, 'sha256') THEN
        RETURN tenant;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION serving.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION serving.current_tenant() TO vigil_api;
