"""The catalog and the analytics recipes as rendered text (no JVM): every placeholder filled, the
streams' columns taken from the jobs' DDL, one INSERT per table and grain, the SQL client's
submission script, the job's flags."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from jobs import analytics
from jobs.analytics_config import RECIPES, AnalyticsConfig
from vigil import sql_catalog, sql_cli, sql_files
from vigil.event_model import UNITS_PER_USD

SETTINGS = sql_catalog.CatalogSettings(bootstrap="127.0.0.1:9", schema_registry_url="http://127.0.0.1:8",
                                       jdbc_url="jdbc:postgresql://127.0.0.1:7/vigil?stringtype=unspecified",
                                       jdbc_user="vigil_writer", jdbc_password="pa'ss")


def _tables(statements: list[str]) -> list[str]:
    return [m.group(1) for s in statements for m in [re.search(r"^CREATE (?:TABLE|VIEW) (\w+)", s, re.M)] if m]


def test_catalog_declares_every_stream_and_serving_table_with_everything_filled_in():
    statements = sql_catalog.statements(SETTINGS)
    assert not any("${" in s for s in statements)
    assert _tables(statements) == [
        "events_clean", "events", "events_dlq", "fraud_alerts", "fraud_scores", "fraud_incidents",
        "fraud_incident_versions", "features_online", "features_online_versions",
        "sales_minute", "sales_hour", "sales_day", "quality_minute", "quality_hour", "quality_day",
        "products_hour", "products_day", "fraud_incidents", "fraud_alerts", "entity_features"]
    assert statements[-1] == "USE streams"
    # a quote in a value cannot end the literal
    assert "'password' = 'pa''ss'" in "\n".join(statements)


def test_streams_take_their_columns_from_the_jobs_ddl():
    columns = sql_catalog.column_lists(5)
    clean = sql_catalog.table_columns("ddl/fraud_tables.sql", "clean_events_source", out_of_orderness_s=5)
    assert columns["clean_columns"] == clean and "WATERMARK FOR row_time AS row_time - INTERVAL '5' SECOND" in clean
    assert "PRIMARY KEY" not in columns["incident_columns"] and not columns["incident_columns"].rstrip().endswith(",")
    assert "payload_size INT" in columns["dlq_columns"]
    with pytest.raises(ValueError):
        sql_catalog.table_columns("ddl/fraud_tables.sql", "no_such_table")


def test_without_a_serving_database_the_catalog_has_the_streams_only():
    statements = sql_catalog.statements(SETTINGS, serving=False)
    assert "sales_minute" not in _tables(statements)


def test_usd_factors_are_the_project_rates_to_twelve_decimals():
    for currency, units in UNITS_PER_USD.items():
        assert abs(sql_catalog.usd_per_unit(currency) * Decimal(repr(units)) - 1) < Decimal("1e-9")


def test_every_recipe_renders_one_insert_per_table_and_grain():
    config = AnalyticsConfig.from_args(["--jdbc-url", "x", "--jdbc-user", "u", "--jdbc-password", "p"])
    values = analytics.recipe_values(config)
    assert all("${" not in s for s in sql_files.render("analytics/inputs.sql", **values))
    targets = []
    for recipe in RECIPES:
        for grain in analytics.RECIPE_GRAINS[recipe] or (None,):
            extra = analytics.grain_values(grain, *config.grains()[grain]) if grain else {}
            for statement in sql_files.render(f"analytics/{recipe}.sql", **values, **extra):
                assert "${" not in statement
                targets.append(re.search(r"INSERT INTO analytics\.(\w+)", statement).group(1))
    assert sorted(targets) == sorted(
        ["sales_minute", "sales_hour", "sales_day", "products_hour", "products_day", "quality_minute",
         "quality_hour", "quality_day", "fraud_incidents", "fraud_alerts", "entity_features"])


def test_steps_must_divide_their_window():
    with pytest.raises(SystemExit):
        AnalyticsConfig.from_args(["--minute-step-s", "7"])
    assert AnalyticsConfig.from_args(["--hour-step-s", "300"]).grains()["hour"] == (300, 3600)


def test_init_statements_carry_no_comments_and_strip_trailing_ones_outside_literals():
    assert sql_cli.strip_comments("SELECT '--not a comment' AS x -- a comment\n-- line\nFROM t") == \
        "SELECT '--not a comment' AS x\nFROM t"
    script = sql_cli.job_script("INSERT INTO a SELECT 1;\nINSERT INTO b SELECT 2;\n", "j", savepoint="file:/sp")
    assert "SET 'execution.state-recovery.path' = 'file:/sp';" in script
    assert script.count("EXECUTE STATEMENT SET BEGIN") == 1 and script.rstrip().endswith("END;")
