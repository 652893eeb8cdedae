"""Tenant isolation in PostgreSQL itself, tried as the API's login role directly in SQL (as an
attacker with the API's connection, e.g. through an injection, would): reading, aggregating
and joining across tenants return only the key's tenant's rows; writing is refused; forged,
copied or stale tenant contexts see nothing; private keys, secrets, partitions and statistics
are out of reach. The writer (Flink's role) upserts any tenant's rows."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from vigil.serving import credentials, keys
from vigil.serving import postgres as pg

RUN = uuid.uuid4().hex[:6]
TA, TB = f"ta{RUN}", f"tb{RUN}"
SHARED_CARD = f"card-{RUN}"          # one card paying at both tenants (the cross-tenant pattern)
ANALYTICS = ("sales_minute", "sales_hour", "sales_day", "quality_minute", "quality_hour", "quality_day",
             "products_hour", "products_day", "fraud_incidents", "fraud_alerts", "entity_features")


def rows_of(tenant: str, gmv: float) -> list[tuple[str, str, dict]]:
    """(table, columns) of one row per table for `tenant`."""
    window = {"window_start": "2026-12-03 10:00:00", "window_end": "2026-12-03 10:01:00"}
    return [
        ("sales_minute", {"tenant_id": tenant, "merchant_id": "m1", **window, "orders": 2, "gmv_usd": gmv}),
        ("sales_minute", {"tenant_id": tenant, "merchant_id": "*", **window, "orders": 2, "gmv_usd": gmv}),
        ("sales_hour", {"tenant_id": tenant, "merchant_id": "*", **window, "orders": 2, "gmv_usd": gmv}),
        ("sales_day", {"tenant_id": tenant, "merchant_id": "*", **window, "orders": 2, "gmv_usd": gmv}),
        ("quality_minute", {"tenant_id": tenant, "reason": "bad_magic_byte", **window, "rejections": 3}),
        ("quality_hour", {"tenant_id": tenant, "reason": "bad_magic_byte", **window, "rejections": 3}),
        ("quality_day", {"tenant_id": tenant, "reason": "bad_magic_byte", **window, "rejections": 3}),
        ("products_hour", {"tenant_id": tenant, "product_id": "p1", "category": "books", **window, "views": 5}),
        ("products_day", {"tenant_id": tenant, "product_id": "p1", "category": "books", **window, "views": 5}),
        ("fraud_incidents", {"incident_id": f"inc-{tenant}", "tenant_id": tenant, "status": "open",
                             "first_seen": "2026-12-03 10:00:00", "last_seen": "2026-12-03 10:00:00",
                             "patterns": ["cross_tenant_card"], "entities": [f"card:{SHARED_CARD}"]}),
        ("fraud_alerts", {"alert_id": f"al-{tenant}", "tenant_id": tenant, "event_id": f"ev-{tenant}",
                          "pattern": "cross_tenant_card", "entity_type": "card", "entity_id": SHARED_CARD,
                          "event_time": "2026-12-03 10:00:00", "reasons": '{"tenants_24h": 2}'}),
        ("entity_features", {"tenant_id": tenant, "entity_type": "card", "entity_id": SHARED_CARD,
                             "as_of": "2026-12-03 10:00:00", "features": '{"events_1h": 4}'}),
    ]


def upsert(conn, table: str, row: dict) -> None:
    """As Flink's JDBC sink does (INSERT ... ON CONFLICT DO UPDATE), on the contract's keys."""
    keys_of = {"fraud_incidents": ["incident_id"], "fraud_alerts": ["alert_id"],
               "entity_features": ["tenant_id", "entity_type", "entity_id"]}
    key = keys_of.get(table) or ["tenant_id", next(c for c in ("merchant_id", "reason", "product_id") if c in row),
                                 "window_start"]
    columns = list(row)
    conn.execute(
        f"INSERT INTO analytics.{table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key),
        list(row.values()))


@pytest.fixture(scope="module")
def world(postgres):
    with psycopg.connect(pg.dsn(credentials.WRITER, postgres)) as conn:
        for tenant, gmv in ((TA, 100.0), (TB, 7777.0)):
            for table, row in rows_of(tenant, gmv):
                upsert(conn, table, row)
    admin = pg.dsn(credentials.ADMIN, postgres)
    _, key_a = keys.create(admin, TA, "rls test")
    _, key_b = keys.create(admin, TB, "rls test")
    revoked_id, revoked = keys.create(admin, TB, "revoked")
    keys.revoke(admin, revoked_id)
    return {"a": key_a, "b": key_b, "revoked": revoked}


@pytest.fixture
def api(postgres):
    with psycopg.connect(pg.dsn(credentials.API, postgres), autocommit=True) as conn:
        yield conn


def as_tenant(conn, key: str, sql: str, params=(), read_write: bool = False) -> list[tuple]:
    with conn.transaction():
        if read_write:     # lift the role's read-only default: what must refuse is the privileges
            conn.execute("SET TRANSACTION READ WRITE")
        conn.execute("SELECT serving.authenticate(%s)", [key])
        return conn.execute(sql, params).fetchall()


def test_without_a_key_the_api_role_sees_no_row(world, api):
    for table in ANALYTICS:
        assert api.execute(f"SELECT count(*) FROM analytics.{table}").fetchone()[0] == 0, table


def test_a_key_reads_its_tenants_rows_only_in_every_table(world, api):
    for table in ANALYTICS:
        seen = as_tenant(api, world["a"], f"SELECT DISTINCT tenant_id FROM analytics.{table}")
        assert seen == [(TA,)], table
        assert as_tenant(api, world["a"], f"SELECT count(*) FROM analytics.{table} WHERE tenant_id = %s",
                         [TB]) == [(0,)], table


def test_aggregates_and_joins_across_tenants_return_own_rows_only(world, api):
    assert as_tenant(api, world["a"], "SELECT sum(gmv_usd), count(DISTINCT tenant_id) FROM analytics.sales_minute") \
        == [(200, 1)]
    # The card both tenants saw: joined on it, only the caller's side exists.
    joined = as_tenant(api, world["a"], """
        SELECT a.tenant_id, f.tenant_id, i.tenant_id
          FROM analytics.fraud_alerts a
          JOIN analytics.entity_features f ON f.entity_id = a.entity_id
          JOIN analytics.fraud_incidents i ON i.entities @> ARRAY['card:' || a.entity_id]
         WHERE a.entity_id = %s""", [SHARED_CARD])
    assert joined == [(TA, TA, TA)]
    other = as_tenant(api, world["a"], """
        SELECT count(*) FROM analytics.sales_minute s JOIN analytics.sales_day d ON d.tenant_id <> s.tenant_id""")
    assert other == [(0,)]
    # Window functions, UNION, a subquery naming the other tenant: nothing of B.
    assert as_tenant(api, world["a"], """
        SELECT count(*) FROM (SELECT tenant_id FROM analytics.sales_hour UNION ALL
                              SELECT tenant_id FROM analytics.quality_hour) u WHERE tenant_id = %s""", [TB]) == [(0,)]


def test_the_cross_tenant_card_statistic_names_no_other_tenant(world, api):
    rows = as_tenant(api, world["a"], "SELECT row_to_json(a)::text FROM analytics.fraud_alerts a"
                                      " WHERE entity_id = %s", [SHARED_CARD])
    assert len(rows) == 1 and TB not in rows[0][0] and f"ev-{TB}" not in rows[0][0]
    assert 'tenants_24h' in rows[0][0]          # how many tenants, not which


@pytest.mark.parametrize("statement", [
    "INSERT INTO analytics.sales_minute (tenant_id, merchant_id, window_start, window_end)"
    " VALUES ('{b}', 'x', '2026-12-03', '2026-12-03')",
    "UPDATE analytics.sales_minute SET gmv_usd = 0",
    "UPDATE analytics.sales_minute SET gmv_usd = 0 WHERE tenant_id = '{b}'",
    "DELETE FROM analytics.fraud_alerts",
    "DELETE FROM analytics.entity_features WHERE tenant_id = '{b}'",
    "TRUNCATE analytics.fraud_incidents",
    "INSERT INTO serving_private.api_keys VALUES ('k', '{b}', '\\x00', null, now(), null)",
])
def test_writes_are_refused_even_in_a_read_write_transaction(world, api, statement):
    with pytest.raises((errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege)):
        as_tenant(api, world["a"], statement.format(b=TB))
    with pytest.raises(errors.InsufficientPrivilege):
        as_tenant(api, world["a"], statement.format(b=TB), read_write=True)


def test_a_forged_copied_or_stale_tenant_context_sees_nothing(world, api):
    count_b = "SELECT count(*) FROM analytics.sales_minute WHERE tenant_id = %s"
    # Setting the tenant by hand (custom settings are settable by anyone): no MAC, no rows.
    api.execute("SELECT set_config('vigil.tenant_id', %s, false)", [TB])
    assert api.execute(count_b, [TB]).fetchone()[0] == 0
    assert api.execute("SELECT serving.current_tenant()").fetchone()[0] is None
    # A genuine context of A, relabelled as B: the MAC binds the tenant.
    with api.transaction():
        api.execute("SELECT serving.authenticate(%s)", [world["a"]])
        mac = api.execute("SELECT current_setting('vigil.tenant_mac')").fetchone()[0]
        api.execute("SELECT set_config('vigil.tenant_id', %s, true)", [TB])
        assert api.execute(count_b, [TB]).fetchone()[0] == 0
    # A's genuine context replayed in a later transaction: bound to its transaction.
    with api.transaction():
        api.execute("SELECT set_config('vigil.tenant_id', %s, true), set_config('vigil.tenant_mac', %s, true)",
                    [TA, mac])
        assert api.execute("SELECT serving.current_tenant()").fetchone()[0] is None
        assert api.execute("SELECT count(*) FROM analytics.sales_minute").fetchone()[0] == 0
    # Garbage instead of a MAC.
    api.execute("SELECT set_config('vigil.tenant_mac', 'zz-not-hex', false)")
    assert api.execute("SELECT serving.current_tenant()").fetchone()[0] is None


def test_unknown_revoked_and_malicious_keys_are_refused(world, api):
    for key in (world["revoked"], world["a"][:-1] + "x", "", "' OR '1'='1", "x'); SELECT pg_sleep(5); --"):
        with pytest.raises(errors.InvalidPassword) as err:
            as_tenant(api, key, "SELECT 1")
        assert "invalid or revoked API key" in str(err.value)
        if key:
            assert key not in str(err.value)


@pytest.mark.parametrize("statement", [
    "SELECT * FROM serving_private.api_keys",
    "SELECT * FROM serving_private.context_secret",
    "SELECT serving_private.context_mac('{b}')",
    "SELECT * FROM serving_private.maintain_partitions()",
    "SELECT serving_private.hmac('x'::bytea, 'y'::bytea, 'sha256')",
    "SELECT count(*) FROM analytics.sales_minute_default",
    "SELECT * FROM public.schema_migrations",
    "SET ROLE vigil_writer",
    "SET ROLE vigil_owner",
    "CREATE TEMPORARY TABLE sales_minute (x int)",
    "CREATE TABLE analytics.mine (x int)",
    "CREATE FUNCTION public.current_tenant() RETURNS text LANGUAGE sql AS $$ SELECT '{b}' $$",
])
def test_private_objects_partitions_and_other_roles_are_out_of_reach(world, api, statement):
    with pytest.raises(errors.InsufficientPrivilege):
        as_tenant(api, world["a"], statement.format(b=TB), read_write=True)


def test_statistics_reveal_no_values_of_protected_tables(world, api, postgres):
    with psycopg.connect(pg.dsn(credentials.ADMIN, postgres), autocommit=True) as admin:
        admin.execute("ANALYZE analytics.sales_minute, analytics.fraud_alerts")
    leaked = as_tenant(api, world["a"], "SELECT count(*) FROM pg_stats WHERE schemaname = 'analytics'")
    assert leaked == [(0,)]


def test_the_writer_upserts_any_tenant_and_a_replay_rewrites_the_same_row(world, postgres):
    with psycopg.connect(pg.dsn(credentials.WRITER, postgres)) as conn:
        for _ in range(2):
            upsert(conn, "sales_minute", rows_of(TB, 7777.0)[0][1] | {"orders": 3})
        rows = conn.execute("SELECT orders FROM analytics.sales_minute WHERE tenant_id = %s AND merchant_id = 'm1'",
                            [TB]).fetchall()
    assert rows == [(3,)]


def test_security_definer_functions_pin_their_search_path(postgres):
    with psycopg.connect(pg.dsn(credentials.ADMIN, postgres)) as conn:
        unpinned = conn.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('serving', 'serving_private') AND p.prosecdef
               AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']""").fetchall()
        definers = conn.execute("SELECT count(*) FROM pg_proc WHERE prosecdef AND pronamespace IN"
                                " ('serving'::regnamespace, 'serving_private'::regnamespace)").fetchone()[0]
    assert unpinned == [] and definers == 3
