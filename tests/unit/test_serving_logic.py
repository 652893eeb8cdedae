"""Serving logic without a database: migration files and history, the named queries' fixed
choices, parameter validation (including arbitrary strings), API key shapes, credentials file."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.api import queries
from vigil.api.params import MAX_SPAN, ApiError, Checker
from vigil.serving import credentials, keys, migrations

NOW = datetime(2026, 12, 3, 12, 0, 0)


# ---------------------------------------------------------------- migrations

def test_the_migrations_are_numbered_in_order_without_gaps():
    found = migrations.discover()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "roles_and_schemas"


def test_a_badly_named_or_duplicate_migration_is_refused(tmp_path):
    (tmp_path / "V001__a.sql").write_text("SELECT 1;")
    (tmp_path / "create_things.sql").write_text("SELECT 1;")
    with pytest.raises(migrations.MigrationError, match="named V<number>"):
        migrations.discover(tmp_path)
    (tmp_path / "create_things.sql").unlink()
    (tmp_path / "V1__b.sql").write_text("SELECT 2;")
    (tmp_path / "V0001__c.sql").write_text("SELECT 2;")
    with pytest.raises(migrations.MigrationError, match="two migrations have version 1"):
        migrations.discover(tmp_path)


def test_history_and_files_must_agree(tmp_path):
    (tmp_path / "V001__a.sql").write_text("SELECT 1;")
    (tmp_path / "V002__b.sql").write_text("SELECT 2;")
    found = migrations.discover(tmp_path)
    done = {1: ("a", found[0].checksum)}
    assert [m.version for m in migrations.check(found, done)] == [2]
    with pytest.raises(migrations.MigrationError, match="V001__a.sql changed after it was applied"):
        migrations.check(found, {1: ("a", "0" * 64)})
    with pytest.raises(migrations.MigrationError, match="V003__c, which this checkout does not"):
        migrations.check(found, {**done, 3: ("c", "x")})


# ---------------------------------------------------------------- named queries

def test_every_grain_renders_its_own_tables_and_nothing_else_renders():
    assert '"analytics"."sales_minute"' in queries.as_text("revenue", "minute")
    text = queries.as_text("dlq_rate", "day")
    assert '"analytics"."sales_day"' in text and '"analytics"."quality_day"' in text
    assert 'sum("carts")' in queries.as_text("top_products", "hour", "carts")
    for bad in ("week", "minute; DROP TABLE x", None, 'hour"'):
        with pytest.raises(ValueError):
            queries.render("revenue", bad)
    with pytest.raises(ValueError):
        queries.render("top_products", "minute", "views")          # no minute products table
    with pytest.raises(ValueError):
        queries.render("top_products", "day", "views) OR (1=1")


def test_values_are_bind_parameters_in_every_query():
    for query in queries.QUERIES.values():
        grain = query.grains[0] if query.grains else None
        text = queries.as_text(query.name, grain, "views")
        # Only placeholders and fixed literals: no Python formatting of values left in the text.
        assert "{" not in text and "'%" not in text
        for placeholder in ("%(start)s", "%(end)s"):
            if placeholder in query.text:
                assert text.count(placeholder) == query.text.count(placeholder)


# ---------------------------------------------------------------- parameters

def test_times_parse_to_naive_utc():
    c = Checker()
    assert c.instant("from", "2026-12-03T10:00:00Z") == datetime(2026, 12, 3, 10)
    assert c.instant("from", "2026-12-03T12:00:00+02:00") == datetime(2026, 12, 3, 10)
    assert c.instant("from", "2026-12-03") == datetime(2026, 12, 3)
    assert c.problems == []


def test_every_problem_of_a_request_is_reported_at_once():
    c = Checker()
    c.choice("grain", "week", queries.GRAINS, "hour")
    c.limit("0", 10)
    c.time_range("yesterday", None, "hour", NOW)
    c.identifier("merchant_id", "m1' OR '1'='1")
    with pytest.raises(ApiError) as err:
        c.done()
    assert err.value.status == 400
    assert [p["parameter"] for p in err.value.details] == ["grain", "limit", "from", "merchant_id"]


def test_ranges_default_to_the_grain_span_and_are_bounded():
    c = Checker()
    assert c.time_range(None, None, "minute", NOW) == (NOW - timedelta(hours=1), NOW)
    c.time_range("2026-12-03T12:00:00Z", "2026-12-03T11:00:00Z", "hour", NOW)
    assert c.problems[-1]["reason"] == "must be before 'to'"
    # "so far": from the start of the grain's current window (a ranking of today, of this hour)
    assert c.time_range(None, None, "day", NOW + timedelta(minutes=5), so_far=True)[0] == datetime(2026, 12, 3)
    assert c.time_range(None, "2026-12-03T00:00:00Z", "day", NOW, so_far=True)[0] == datetime(2026, 12, 2)
    start = (NOW - MAX_SPAN["minute"] - timedelta(seconds=1)).isoformat()
    c.time_range(start, None, "minute", NOW)
    assert "coarser grain" in c.problems[-1]["reason"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_string_is_a_valid_value_or_a_clear_refusal(value):
    c = Checker()
    results = [c.identifier("merchant_id", value), c.instant("from", value), c.limit(value, 10),
               c.choice("grain", value, queries.GRAINS, "hour"), c.pattern("pattern", value)]
    for problem in c.problems:
        assert problem["reason"] and problem["parameter"]
    accepted_id = results[0]
    if accepted_id is not None:
        assert "\x00" not in accepted_id and "'" not in accepted_id and len(accepted_id) <= 128


# ---------------------------------------------------------------- keys and credentials

def test_keys_are_random_well_formed_and_stored_as_hashes_only():
    key_id, key = keys.new_key()
    other = keys.new_key()[1]
    assert keys.well_formed(key) and key != other and key_id in key
    assert len(keys.key_hash(key)) == 32 and keys.key_hash(key) != keys.key_hash(other)
    for bad in ("", "vgl_", key + "x", key.replace("vgl_", "vgk_"), key[:-1] + "!", "' OR 1=1 --"):
        assert not keys.well_formed(bad)


def test_credentials_file_is_private_and_stable(tmp_path):
    path = tmp_path / "credentials.json"
    first, new = credentials.ensure(path)
    assert new and set(first) == set(credentials.ROLES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    again, new = credentials.ensure(path)
    assert not new and again == first and stat.S_IMODE(path.stat().st_mode) == 0o600
