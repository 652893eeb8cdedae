"""Fraud rule parameters: messages, precedence in the job's SQL, CLI parsing; no JVM."""

from __future__ import annotations

import re

import pytest

from jobs.fraud_sql import ENTITIES, effective_rules_sql, pattern_views, usd_rate_sql
from vigil import fraud_rules, sql_files
from vigil.rules_cli import parse_assignments


def test_every_parameter_is_a_column_and_resolves_tenant_then_default_row_then_compiled_default():
    columns = fraud_rules.sql_columns()
    coalesced = effective_rules_sql()
    for name in fraud_rules.PARAMETERS:
        assert f"{name} " in columns
        assert f"COALESCE(t.{name}, d.{name}, {fraud_rules.sql_literal(name)}) AS {name}" in coalesced


def test_a_tenant_message_inherits_what_it_does_not_set():
    message = fraud_rules.rule_message("t1", {"velocity_1m": 15}, effective_from_ms=1_795_000_000_123)
    assert message["velocity_1m"] == 15 and message["velocity_10m"] is None
    assert message["effective_from"] == "2026-11-18 11:06:40.123"
    defaults = fraud_rules.default_message(0)
    assert all(defaults[name] is not None for name in fraud_rules.PARAMETERS)


@pytest.mark.parametrize("assignment, error", [
    ("velocity_1x=3", "unknown rule parameter"),
    ("card_testing_enabled=yes", "true or false"),
    ("velocity_1m=many", "invalid literal"),
])
def test_bad_assignments_are_refused_with_a_reason(assignment, error):
    with pytest.raises(ValueError, match=error):
        parse_assignments([assignment])


def test_every_currency_has_a_rate_and_every_velocity_view_is_unioned():
    assert "WHEN 'JPY' THEN 150.0" in usd_rate_sql()
    views = pattern_views()
    assert len(views) == len(set(views)) == 7 + len(ENTITIES)
    # every view the alerts are unioned from is one the SQL creates (velocity: one per entity)
    text = sql_files.path_of("queries/fraud_patterns.sql").read_text()
    text += "".join(sql_files.path_of("queries/fraud_velocity.sql").read_text().replace("${entity_type}", entity)
                    for entity in ENTITIES)
    assert set(views) <= set(re.findall(r"CREATE TEMPORARY VIEW (\w+) AS", text))


def test_the_cli_refuses_what_the_job_would_refuse_before_publishing(capsys):
    from types import SimpleNamespace

    from vigil.rules_cli import run
    args = SimpleNamespace(action="set", tenant="t1", assignments=["velocity_1m=-5"], effective_from=0,
                           bootstrap="127.0.0.1:1", topic="fraud.rules")  # nothing listens: never reached
    assert run(args) == 2
    assert "velocity_1m=-5 must be a positive number" in capsys.readouterr().err
