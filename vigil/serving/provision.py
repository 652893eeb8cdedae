"""Bring a database of the local PostgreSQL to the current schema: create it, apply the
migrations, set the login roles' passwords from the credentials file, prepare partitions.

Used by `postgres.ensure_running()` for the `vigil` database, and by the tests and the benchmark
for databases of their own (`create_database`/`drop_database`), which share the cluster's roles.
"""

from __future__ import annotations

import re
import secrets
from contextlib import contextmanager

from vigil.serving import credentials, migrations, postgres, retention

SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _admin(settings: postgres.PgSettings, database: str = "postgres"):
    import psycopg

    return psycopg.connect(postgres.dsn(credentials.ADMIN, database, settings), autocommit=True)


def create_database(name: str, settings: postgres.PgSettings) -> bool:
    """CREATE DATABASE unless it exists; True when created."""
    from psycopg import errors, sql

    if not SAFE_NAME.match(name):
        raise ValueError(f"database name {name!r}: lowercase letters, digits and _ only")
    with _admin(settings) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            return False   # another process made it in between
        return True


def drop_database(name: str, settings: postgres.PgSettings) -> None:
    from psycopg import sql

    if name == postgres.DATABASE:
        raise ValueError("refusing to drop the main database; use `vigil infra down --wipe`")
    with _admin(settings) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def set_passwords(settings: postgres.PgSettings) -> None:
    """The login roles' passwords, as the credentials file says (every start: cheap, and a
    regenerated file takes effect without a manual step)."""
    from psycopg import sql

    passwords = credentials.read(postgres.credentials_file())
    with _admin(settings) as conn:
        for role in (credentials.WRITER, credentials.API):
            conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(passwords[role])))


@contextmanager
def cluster_lock(settings: postgres.PgSettings):
    """Serialise preparations across processes (parallel test workers, `vigil infra up` beside a
    test session): roles are cluster-wide, and two sessions altering one role at once fail
    ("tuple concurrently updated"). Advisory locks are per database, so this one is taken in
    the `postgres` database, on a connection held for the duration."""
    with _admin(settings) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [migrations.LOCK_KEY])
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [migrations.LOCK_KEY])


def prepare_database(name: str, settings: postgres.PgSettings, log=print) -> None:
    with cluster_lock(settings):
        _prepare(name, settings, log)


def _prepare(name: str, settings: postgres.PgSettings, log) -> None:
    if create_database(name, settings):
        log(f"postgres: created database {name}")
    applied = migrations.migrate(postgres.dsn(credentials.ADMIN, name, settings), log=log)
    set_passwords(settings)
    changes = retention.maintain(postgres.dsn(credentials.ADMIN, name, settings))
    created = sum(1 for c in changes if c.action == "created")
    log(f"postgres: database {name} at migration {migrations.discover()[-1].version}"
        f" ({len(applied)} applied now); partitions: {created} created,"
        f" {len(changes) - created} dropped or trimmed")


@contextmanager
def scratch_database(prefix: str, settings: postgres.PgSettings | None = None, log=lambda *_: None):
    """A fresh database at the current schema, dropped afterwards (tests, benchmarks): its own
    tables, keys and tenant-context secret; the cluster's roles are shared."""
    settings = settings or postgres.PgSettings()
    name = f"{prefix}_{secrets.token_hex(4)}"
    prepare_database(name, settings, log)
    try:
        yield name
    finally:
        drop_database(name, settings)
