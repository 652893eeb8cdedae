"""The serving database on a real PostgreSQL: migrations (fresh database, idempotent, atomic,
edited files refused), time partitions (created ahead, rows rescued from the default partition,
expired ones dropped) and retention of the unpartitioned mirrors. Each test that moves time
works in a scratch database of its own."""

from __future__ import annotations

import shutil
from datetime import datetime

import psycopg
import pytest

from vigil.serving import credentials, migrations, provision, retention
from vigil.serving import postgres as pg


@pytest.fixture(scope="module")
def migrated(postgres_server):
    """One scratch database for the migration tests (each leaves it as it found it)."""
    with provision.scratch_database("vigil_test_migrations", postgres_server) as name:
        yield pg.dsn(credentials.ADMIN, name)


@pytest.fixture
def scratch(postgres_server):
    """A scratch database of the test's own (tests that move time change its partitions)."""
    with provision.scratch_database("vigil_test_scratch", postgres_server) as name:
        yield pg.dsn(credentials.ADMIN, name)


def partitions(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1", [table])]


def sales_row(conn, tenant: str, merchant: str, start: str, gmv: float = 10.0) -> None:
    conn.execute("INSERT INTO analytics.sales_minute (tenant_id, merchant_id, window_start, window_end, orders, gmv_usd)"
                 " VALUES (%s, %s, %s::timestamp, %s::timestamp + interval '1 minute', 1, %s)",
                 [tenant, merchant, start, start, gmv])


def test_migrations_build_an_empty_database_once(migrated):
    with psycopg.connect(migrated) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM public.schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in migrations.discover()]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'analytics'"
                                             " AND tablename NOT LIKE '%\\_p%' AND tablename NOT LIKE '%default'")}
    assert tables == {"sales_minute", "sales_hour", "sales_day", "quality_minute", "quality_hour", "quality_day",
                      "products_hour", "products_day", "fraud_incidents", "fraud_alerts", "entity_features"}
    assert migrations.migrate(migrated, log=lambda *_: None) == []     # idempotent


def test_an_edited_applied_migration_is_an_error(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        real = conn.execute("SELECT checksum FROM public.schema_migrations WHERE version = 2").fetchone()[0]
        conn.execute("UPDATE public.schema_migrations SET checksum = %s WHERE version = 2", ["0" * 64])
        try:
            with pytest.raises(migrations.MigrationError, match="V002__tenant_context.sql changed after it was applied"):
                migrations.migrate(migrated, log=lambda *_: None)
        finally:
            conn.execute("UPDATE public.schema_migrations SET checksum = %s WHERE version = 2", [real])


def test_a_failing_migration_leaves_nothing_behind(scratch, tmp_path):
    for migration in migrations.discover():
        shutil.copy(migration.path, tmp_path / migration.path.name)
    (tmp_path / "V999__broken.sql").write_text(
        "CREATE TABLE analytics.half_done (x int);\nSELEC 'this is not SQL';\n")
    with pytest.raises(migrations.MigrationError, match="V999__broken.sql failed, nothing of it was applied"):
        migrations.migrate(scratch, tmp_path, log=lambda *_: None)
    with psycopg.connect(scratch) as conn:
        assert conn.execute("SELECT to_regclass('analytics.half_done')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM public.schema_migrations WHERE version = 999").fetchone()[0] == 0
    (tmp_path / "V999__broken.sql").write_text("CREATE TABLE analytics.half_done (x int);\n")
    assert [m.version for m in migrations.migrate(scratch, tmp_path, log=lambda *_: None)] == [999]


def test_partitions_are_made_ahead_and_rescue_rows_from_the_default_partition(scratch):
    retention.maintain(scratch, at=datetime(2030, 6, 15, 12))
    with psycopg.connect(scratch) as conn:
        days = partitions(conn, "analytics.sales_minute")
        # 3 days (premake) back and ahead, the default partition for the rest
        for day in ("20300612", "20300615", "20300617"):
            assert f"sales_minute_p{day}" in days
        assert "sales_minute_p20300611" not in days and "sales_minute_p20300618" not in days
        assert "sales_minute_default" in days
        assert {"sales_hour_p203006", "sales_hour_p203007"} <= set(partitions(conn, "analytics.sales_hour"))
        assert "sales_day_p2030" in partitions(conn, "analytics.sales_day")
        # A row ahead of the partitions lands in the default partition ...
        sales_row(conn, "t1", "m1", "2030-07-01 00:05:00")
        where = "SELECT tableoid::regclass::text FROM analytics.sales_minute WHERE window_start = '2030-07-01 00:05'"
        assert conn.execute(where).fetchone()[0] == "analytics.sales_minute_default"
        conn.commit()
    changes = retention.maintain(scratch, at=datetime(2030, 6, 29, 12))
    assert any(c.partition.startswith("sales_minute_p20300701 (1 rows moved") for c in changes)
    with psycopg.connect(scratch) as conn:
        # ... and moves to its own partition when that is made, still there through the parent
        assert conn.execute(where).fetchone()[0] == "analytics.sales_minute_p20300701"
        rls = conn.execute("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class"
                           " WHERE oid = 'analytics.sales_minute_p20300701'::regclass").fetchone()[0]
        assert rls


def test_retention_drops_expired_partitions_and_rows(scratch):
    retention.maintain(scratch, at=datetime(2030, 6, 15, 12))
    with psycopg.connect(scratch) as conn:
        sales_row(conn, "t1", "m1", "2030-06-12 10:00:00")            # in a partition
        sales_row(conn, "t1", "m1", "2030-06-10 10:00:00")            # before any: default
        sales_row(conn, "t1", "m1", "2030-06-14 10:00:00")            # kept
        conn.execute("INSERT INTO analytics.fraud_alerts (alert_id, tenant_id, event_time) VALUES"
                     " ('old', 't1', '2030-01-01'), ('new', 't1', '2030-06-15')")
    changes = retention.maintain(scratch, at=datetime(2030, 6, 20, 0))
    dropped = {c.partition for c in changes if c.action == "dropped" and c.table == "analytics.sales_minute"}
    # cutoff 2030-06-13 00:00 (7 days): partitions ending on or before it go, 06-13 stays
    assert dropped == {"sales_minute_p20300612"}
    assert ("analytics.sales_minute", "deleted 1 expired rows", "sales_minute_default") in \
        {(c.table, c.action, c.partition) for c in changes}
    with psycopg.connect(scratch) as conn:
        kept = conn.execute("SELECT window_start FROM analytics.sales_minute").fetchall()
        assert kept == [(datetime(2030, 6, 14, 10),)]
        assert [r[0] for r in conn.execute("SELECT alert_id FROM analytics.fraud_alerts")] == ["new"]
    # A shorter retention applies on the next pass.
    retention.set_retention(scratch, "sales_minute", 2)
    retention.maintain(scratch, at=datetime(2030, 6, 20, 0))
    with psycopg.connect(scratch) as conn:
        assert min(p for p in partitions(conn, "analytics.sales_minute") if "_p" in p) == "sales_minute_p20300618"
    with pytest.raises(ValueError, match="no retention for 'nothing'"):
        retention.set_retention(scratch, "nothing", 3)


def test_every_analytics_table_and_partition_forces_row_level_security(postgres):
    with psycopg.connect(pg.dsn(credentials.ADMIN, postgres)) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            "       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')").fetchall()
    assert len(rows) > 20
    assert [r for r in rows if not (r[1] and r[2] and r[3] == 2)] == []
