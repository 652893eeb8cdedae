"""The subject vault of ADR 0016, in the serving PostgreSQL (table pii.subject_keys, migration V007).

    vault = Vault(postgres.dsn(credentials.WRITER), pepper())
    subject = vault.subject("t1", "user", "u-123")    # the same Subject for the same identifier
    vault.erase(admin_dsn, "t1", "user", "u-123")      # as the admin: the row, hence the key, is gone

The pepper (32 random bytes) is the only secret outside the database: without it nobody can find
a subject's row from an identifier. Locally it is `<state>/pii/pepper` (0600), made on first use;
in production it comes from a secret store (VIGIL_PII_PEPPER_FILE names the file).

Creation races (two TaskManagers meeting a new user at once) end with one row: INSERT ... ON
CONFLICT DO NOTHING, then the row that won is read. Subjects are cached per process (an LRU of
`cache_size` entries); an erased subject may live on in a cache until the process restarts or
`forget` is called, which is why erasure also tells the jobs (ADR 0016, decision 4).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from vigil.paths import state_dir, sub
from vigil.pii import crypto

CARD_SCOPE = "*"     # cards are subjects of the platform: the cross-tenant card statistic needs equality


def scope_of(tenant_id: str, kind: str) -> str:
    """>>> scope_of("t1", "card"), scope_of("t1", "user")
    ('*', 't1')
    """
    return CARD_SCOPE if kind == "card" else tenant_id


def pepper_file() -> Path:
    return Path(os.environ.get("VIGIL_PII_PEPPER_FILE") or sub(state_dir(), "pii") / "pepper")


def pepper(path: Path | None = None) -> bytes:
    """The platform's pepper, made (0600, exclusively) on first use."""
    path = path or pepper_file()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:      # another process made it a moment ago
            data = path.read_bytes()
        else:
            data = crypto.new_pepper()
            with os.fdopen(fd, "wb") as out:
                out.write(data)
    if len(data) != crypto.PEPPER_BYTES:
        raise RuntimeError(f"{path} is not a pepper ({len(data)} bytes, not {crypto.PEPPER_BYTES})")
    return data


class Vault:
    def __init__(self, conninfo: str, pepper_bytes: bytes, cache_size: int = 100_000):
        self.conninfo = conninfo
        self.pepper = pepper_bytes
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, crypto.Subject] = OrderedDict()
        self._conn = None

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def subject(self, tenant_id: str, kind: str, value: str) -> crypto.Subject:
        """The subject of an identifier, created when it is new."""
        scope = scope_of(tenant_id, kind)
        lookup = crypto.lookup(self.pepper, scope, kind, value)
        cache_key = scope.encode() + b"\x00" + lookup
        found = self._cache.get(cache_key)
        if found is not None:
            self._cache.move_to_end(cache_key)
            return found
        fresh = crypto.new_subject(kind)
        conn = self._connection()
        conn.execute("INSERT INTO pii.subject_keys (scope, kind, lookup, key, token) VALUES (%s, %s, %s, %s, %s)"
                     " ON CONFLICT (scope, kind, lookup) DO NOTHING", [scope, kind, lookup, fresh.key, fresh.token])
        key, token = conn.execute("SELECT key, token FROM pii.subject_keys WHERE scope = %s AND kind = %s"
                                  " AND lookup = %s", [scope, kind, lookup]).fetchone()
        found = crypto.Subject(bytes(key), token)
        self._cache[cache_key] = found
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return found

    def key_of_token(self, token: str) -> bytes | None:
        """The key that opens a subject's sealed values; None once the subject is erased."""
        row = self._connection().execute("SELECT key FROM pii.subject_keys WHERE token = %s", [token]).fetchone()
        return bytes(row[0]) if row else None

    def forget(self) -> None:
        """Drop the cache (after an erasure)."""
        self._cache.clear()


def erase(admin_conninfo: str, pepper_bytes: bytes, tenant_id: str, kind: str, value: str) -> str | None:
    """Delete a subject's row (its key and the only link from the person to its token) and
    vacuum the table, so the deleted tuple leaves the heap. Returns the erased token (for the
    stores that must drop it, ADR 0016) or None when the subject was unknown. As the admin: the
    jobs' role cannot delete."""
    import psycopg

    scope = scope_of(tenant_id, kind)
    lookup = crypto.lookup(pepper_bytes, scope, kind, value)
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        row = conn.execute("DELETE FROM pii.subject_keys WHERE scope = %s AND kind = %s AND lookup = %s"
                           " RETURNING token", [scope, kind, lookup]).fetchone()
        conn.execute("VACUUM pii.subject_keys")
    return row[0] if row else None
