-- V007: the subject vault of ADR 0016 (personal data). One row per subject: the lookup is an
-- HMAC of (scope, kind, identifier) under a pepper kept outside the database, so the identifier
-- is never stored; the row holds the subject's random key (its sealed values) and random token
-- (what replaces the identifier downstream). Erasure deletes the row: the key is gone (every
-- sealed copy unreadable) and nothing maps the person to the token any more.
--
-- The ingest job (as vigil_writer) reads and creates subjects; only the admin erases. The API
-- role has no grant: tokens never need resolving to keys when serving.

-- Its own schema: vigil_writer needs USAGE on it, and must not get it on serving_private.
CREATE SCHEMA pii AUTHORIZATION vigil_owner;
REVOKE ALL ON SCHEMA pii FROM PUBLIC;

SET LOCAL ROLE vigil_owner;

CREATE TABLE pii.subject_keys (
    scope      text        NOT NULL CHECK (scope <> '' AND length(scope) <= 200),   -- tenant, or '*' (cards)
    kind       text        NOT NULL CHECK (kind IN ('user', 'device', 'ip', 'card')),
    lookup     bytea       NOT NULL CHECK (length(lookup) = 32),
    key        bytea       NOT NULL CHECK (length(key) = 32),
    token      text        NOT NULL UNIQUE CHECK (length(token) BETWEEN 8 AND 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, kind, lookup)
);
COMMENT ON TABLE pii.subject_keys IS
    'Per-subject keys and tokens (ADR 0016); a deleted row is a shredded subject';
-- Erased rows must leave the heap soon: autovacuum at any change (the erasure runs VACUUM too).
ALTER TABLE pii.subject_keys SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1);

GRANT USAGE ON SCHEMA pii TO vigil_writer;
GRANT SELECT, INSERT ON pii.subject_keys TO vigil_writer;
