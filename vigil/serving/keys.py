"""Tenants' API keys: created (shown once), listed, revoked. Only a key's SHA-256 is stored.

A key is `vgl_<key id>_<secret>`: the key id (12 hex digits) names the key in listings and
revocations without revealing it; the secret is 32 random bytes (URL-safe base64). At 256 bits
of entropy a fast hash is as good as a slow one (nobody can guess a key to test against a
stolen hash), and it lets the database look a key up by its hash in one index probe.
Validation of a presented key happens in the database (serving.authenticate, V002), which also
binds the request's transaction to the key's tenant for row-level security.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

KEY_FORMAT = re.compile(r"^vgl_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
# The identifiers the ingest job accepts (udfs/validation.py): any other tenant has no data.
TENANT_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}$")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant_id: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def new_key() -> tuple[str, str]:
    """(key id, full key)."""
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key_id, f"vgl_{key_id}_{secret}"


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def well_formed(key: str) -> bool:
    """Cheap shape check before asking the database (garbage costs no round trip)."""
    return bool(KEY_FORMAT.match(key))


def create(conninfo: str, tenant_id: str, label: str | None = None) -> tuple[str, str]:
    """A new key for `tenant_id`: (key id, key). The key is not stored and cannot be shown again."""
    import psycopg

    if not TENANT_FORMAT.match(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r}: letters, digits and _ . @ - (first a letter or digit),"
                         " at most 128 characters")
    if label is not None and (len(label) > 200 or any(ord(c) < 32 for c in label)):
        raise ValueError("label: at most 200 printable characters")
    key_id, key = new_key()
    with psycopg.connect(conninfo) as conn:
        conn.execute("INSERT INTO serving_private.api_keys (key_id, tenant_id, key_hash, label)"
                     " VALUES (%s, %s, %s, %s)", [key_id, tenant_id, key_hash(key), label])
    return key_id, key


def list_keys(conninfo: str, tenant_id: str | None = None) -> list[KeyInfo]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT key_id, tenant_id, label, created_at, revoked_at FROM serving_private.api_keys"
                            " WHERE %(t)s::text IS NULL OR tenant_id = %(t)s ORDER BY tenant_id, created_at",
                            {"t": tenant_id}).fetchall()
    return [KeyInfo(*row) for row in rows]


def revoke(conninfo: str, key_id: str) -> bool:
    """Revoke a key by its id; True if a live key was revoked. Takes effect on the next request."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        return conn.execute("UPDATE serving_private.api_keys SET revoked_at = now()"
                            " WHERE key_id = %s AND revoked_at IS NULL", [key_id]).rowcount == 1
