"""Versioned schema migrations for the serving database (sql/serving/migrations/).

Files are named `V<number>__<what>.sql` and applied in number order, each once, each in its own
transaction together with its row in `public.schema_migrations` (version, name, SHA-256 of the
file, when, how long): a migration that fails leaves nothing behind and is retried next time.
An applied migration whose file has changed since is an error (fix forward with a new file,
never edit an applied one), and so is a database that has a migration this checkout lacks.
Concurrent runners (two `vigil infra up`, a test session) serialise on an advisory lock.

Migrations run as the admin role; a file that creates objects for `vigil_owner` says
`SET LOCAL ROLE vigil_owner` itself, and the runner resets the role before its bookkeeping.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from vigil.paths import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "sql" / "serving" / "migrations"
NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")
# Any constant will do; the same in every process that migrates.
LOCK_KEY = 0x5649_4749_4C00_0013 & 0x7FFF_FFFF_FFFF_FFFF

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version      integer PRIMARY KEY,
    name         text        NOT NULL,
    checksum     text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    execution_ms integer     NOT NULL
);
REVOKE ALL ON public.schema_migrations FROM PUBLIC;
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named V<number>__<lowercase_words>.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations have version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def applied(conn) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of what the database has (empty before the first run)."""
    exists = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    return {v: (n, c) for v, n, c in conn.execute("SELECT version, name, checksum FROM public.schema_migrations")}


def check(migrations: list[Migration], done: dict[int, tuple[str, str]]) -> list[Migration]:
    """The migrations still to apply; raises when history and files disagree."""
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(done.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"the database has migration V{version:03d}__{name}, which this checkout"
                                 " does not: it was migrated by a newer version of Vigil")
        if migration.checksum != checksum:
            raise MigrationError(f"{migration.path.name} changed after it was applied (checksum {checksum[:12]}"
                                 f" in the database, {migration.checksum[:12]} on disk): never edit an"
                                 " applied migration, add a new one")
    return [m for m in migrations if m.version not in done]


def migrate(conninfo: str, directory: Path = MIGRATIONS_DIR, log=print) -> list[Migration]:
    """Apply what is missing; returns the migrations applied by this call."""
    import psycopg

    migrations = discover(directory)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            conn.execute(BOOKKEEPING)
            pending = check(migrations, applied(conn))
            for migration in pending:
                started = time.monotonic()
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute("RESET ROLE")
                        conn.execute(
                            "INSERT INTO public.schema_migrations (version, name, checksum, execution_ms)"
                            " VALUES (%s, %s, %s, %s)",
                            [migration.version, migration.name, migration.checksum,
                             int((time.monotonic() - started) * 1000)])
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.path.name} failed, nothing of it was applied: {exc}") from exc
                log(f"postgres: applied {migration.path.name} ({(time.monotonic() - started) * 1000:.0f} ms)")
            return pending
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
