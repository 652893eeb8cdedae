"""The subject vault (vigil/pii/vault.py, migration V007) in a real PostgreSQL: one subject per
identifier and scope, whatever the races; cards shared across tenants; the jobs' role reads and
creates but cannot erase, the API role cannot even read; an erased subject's key is gone, so its
sealed values are unreadable, and the identifier gets a new, unrelated token afterwards."""

from __future__ import annotations

import threading

import psycopg
import pytest

from vigil.pii import crypto, vault
from vigil.serving import credentials
from vigil.serving import postgres as pg


@pytest.fixture
def pepper(tmp_path):
    return vault.pepper(tmp_path / "pepper")


def test_one_subject_per_identifier_and_scope(own_database, pepper):
    v = vault.Vault(pg.dsn(credentials.WRITER, own_database), pepper)
    user = v.subject("t1", "user", "u-1")
    assert v.subject("t1", "user", "u-1") == user
    assert vault.Vault(pg.dsn(credentials.WRITER, own_database), pepper).subject("t1", "user", "u-1") == user
    assert v.subject("t2", "user", "u-1").token != user.token          # tenants' users are apart
    assert v.subject("t1", "device", "u-1").token != user.token
    assert v.subject("t1", "card", "fp-9") == v.subject("t2", "card", "fp-9")   # cards are the platform's
    with psycopg.connect(pg.dsn(credentials.ADMIN, own_database)) as conn:
        stored = conn.execute("SELECT scope, kind, lookup, token FROM pii.subject_keys").fetchall()
    assert len(stored) == 4
    assert not any(b"u-1" in bytes(row[2]) or "u-1" in row[3] or "fp-9" in row[3] for row in stored)


def test_concurrent_creation_ends_with_one_subject(own_database, pepper):
    found = []

    def meet():
        found.append(vault.Vault(pg.dsn(credentials.WRITER, own_database), pepper).subject("t1", "user", "new-user"))
    threads = [threading.Thread(target=meet) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and len(set(found)) == 1


def test_roles_the_jobs_cannot_erase_and_the_api_cannot_read(own_database, pepper):
    vault.Vault(pg.dsn(credentials.WRITER, own_database), pepper).subject("t1", "user", "u-1")
    with psycopg.connect(pg.dsn(credentials.WRITER, own_database)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM pii.subject_keys")
    with psycopg.connect(pg.dsn(credentials.API, own_database)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT key FROM pii.subject_keys")


def test_erasure_shreds_the_key_and_breaks_the_link(own_database, pepper):
    writer, admin = pg.dsn(credentials.WRITER, own_database), pg.dsn(credentials.ADMIN, own_database)
    v = vault.Vault(writer, pepper)
    subject, other = v.subject("t1", "user", "gone"), v.subject("t1", "user", "stays")
    sealed = crypto.seal(subject.key, b"48.85,2.35", ("t1", "user", "e1"))
    assert vault.erase(admin, pepper, "t1", "user", "gone") == subject.token
    assert vault.erase(admin, pepper, "t1", "user", "gone") is None
    fresh = vault.Vault(writer, pepper)
    assert fresh.key_of_token(subject.token) is None
    assert fresh.key_of_token(other.token) == other.key                # other subjects untouched
    again = fresh.subject("t1", "user", "gone")                          # seen again later: a new subject
    assert again.token != subject.token and again.key != subject.key
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(again.key, sealed, ("t1", "user", "e1"))


def test_the_pepper_file_is_private_and_stable(tmp_path):
    path = tmp_path / "pepper"
    first = vault.pepper(path)
    assert vault.pepper(path) == first and len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_bytes(b"short")
    with pytest.raises(RuntimeError):
        vault.pepper(path)
