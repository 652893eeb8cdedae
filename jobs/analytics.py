"""Analytics job: the SQL recipes of sql/analytics/ as one Flink job writing PostgreSQL.

Input  vigil.streams.* (sql/catalog/streams.sql): events.clean (event time, avro-confluent),
       events.dlq (JSON dead letters), fraud.alerts, fraud.incidents, features.online.
       Example event: {"tenant_id": "t007", "merchant_id": "m0042", "user_id": "u0001234",
       "event_type": "payment_result", "status": "approved", "amount": 59.90, "currency": "EUR",
       "event_time": 2026-12-03 10:15:02.120, ...}
Output vigil.analytics.* (sql/catalog/serving.sql), PostgreSQL tables written by Flink's JDBC
       connector as upserts on their primary keys: sales_{minute,hour,day} per tenant x merchant
       (and '*'), products_{hour,day}, quality_{minute,hour,day}, fraud_incidents, fraud_alerts,
       entity_features. Exactly-once in effect: a restore replays from the checkpoint and rewrites
       the same rows (docs/adr/0011).
State  window slices until their window closes; distinct users per key and window; quality counts
       for --quality-ttl of processing time. Mirrors keep none.
Late   --out-of-orderness (5 s) of disorder; later rows are counted, not dropped, as
       analytics_late_event in the quality tables (sql/analytics/inputs.sql).
Code   this file only renders the catalog and the recipes with the config (jobs/analytics_config.py)
       and submits them as one statement set; the logic is the SQL.
Run    locally:  vigil run analytics [--bounded]
       cluster:  vigil submit analytics [flags]
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # `flink run -py jobs/analytics.py` runs this file as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.analytics_config import JOB_NAME, AnalyticsConfig  # noqa: E402
from vigil import jars, sql_catalog, sql_files  # noqa: E402
from vigil.flink_env import execute, table_environment, uid_settings  # noqa: E402

Fragment = sql_files.Fragment

# Which grains each recipe is rendered for (None: once, it has no windows).
RECIPE_GRAINS = {"sales": ("minute", "hour", "day"), "products": ("hour", "day"),
                 "quality": ("minute", "hour", "day"), "fraud_mirrors": None}


# Flink's mini-batches stay off in this job (ADR 0011): with them, the planner puts a mini-batch
# assigner after each source, and on the paths without event-time operators (the quality counts)
# it forwards processing time as the watermark, so CURRENT_WATERMARK would call every replayed
# event late there while the windows count it. Window aggregations are two-phase without them.
NO_MINI_BATCH = {"table.exec.mini-batch.enabled": "false"}


def hot_key_options(config: AnalyticsConfig) -> dict[str, str]:
    """Skew handling (ADR 0011, measured in bench/analytics_job.py): each window aggregation is
    computed per key before the shuffle and merged after it (two-phase, local-global: a hot
    merchant or tenant sends one partial aggregate per slice and watermark instead of every row).
    Split distinct counts (a first aggregation per key and bucket of users) stay off unless asked
    for: a CUMULATE window re-emits every key it holds at every step, and the buckets multiply
    the keys by up to 1024."""
    return {**NO_MINI_BATCH, "table.optimizer.agg-phase-strategy": config.agg_phase,
            "table.optimizer.distinct-agg.split.enabled": str(config.split_distinct).lower()}


def job_options(config: AnalyticsConfig) -> dict[str, str]:
    jar_uris = [p.as_uri() for p in jars.flink_connector_jars() + jars.jdbc_jars()]
    return {"pipeline.jars": ";".join(jar_uris), "table.exec.state.ttl": config.quality_ttl,
            **hot_key_options(config), **uid_settings(JOB_NAME)}


def recipe_values(config: AnalyticsConfig) -> dict:
    """Placeholders of sql/analytics/*.sql that do not depend on the grain."""
    from udfs.fraud_features import FEATURES
    from udfs.incidents import SEVERITIES

    severity = "CASE " + " ".join(f"WHEN score >= {floor} THEN '{name}'" for floor, name in SEVERITIES
                                  if floor > 0) + f" ELSE '{SEVERITIES[-1][1]}' END"
    return dict(out_of_orderness_s=config.out_of_orderness_s, usd_per_unit=sql_catalog.usd_per_unit_sql(),
                patterns_array=pg_text_array_sql("patterns"), entities_array=pg_text_array_sql("entities"),
                severity=Fragment(severity),
                features_json=Fragment("JSON_OBJECT(" + ", ".join(f"'{name}' VALUE {name}" for name in FEATURES) + ")"))


def grain_values(grain: str, step_s: int, size_s: int) -> dict:
    unit = grain.upper()
    step_text = f"{step_s} s" if step_s < 60 else f"{step_s // 60} min"
    return dict(grain=Fragment(grain), unit=Fragment(unit), step=Fragment(f"INTERVAL '{step_s}' SECOND(5)"),
                size=Fragment(f"INTERVAL '{size_s}' SECOND(5)"), step_text=step_text)


def pg_text_array_sql(column: str) -> Fragment:
    """A Flink ARRAY<STRING> as a PostgreSQL text[] literal ('{"a","b"}'; '{}' when empty or null):
    the JDBC connector cannot bind arrays, PostgreSQL casts the literal (stringtype=unspecified).
    Elements are joined on CHR(1), which identifiers never hold, then quoted and escaped.

    >>> print(pg_text_array_sql("p"))  # doctest: +ELLIPSIS
    CASE WHEN p IS NULL OR CARDINALITY(p) = 0 THEN '{}' ELSE '{"' || REPLACE(...) || '"}' END
    """
    joined = f"ARRAY_JOIN({column}, CHR(1))"
    escaped = f"REPLACE(REPLACE({joined}, '\\', '\\\\'), '\"', '\\\"')"
    return Fragment(f"CASE WHEN {column} IS NULL OR CARDINALITY({column}) = 0 THEN '{{}}' "
                    f"ELSE '{{\"' || REPLACE({escaped}, CHR(1), '\",\"') || '\"}}' END")


def create_catalog(t_env, config: AnalyticsConfig) -> None:
    for statement in sql_catalog.statements(config.catalog_settings()):
        t_env.execute_sql(statement)


def build_pipeline(t_env, config: AnalyticsConfig):
    """The recipes' INSERTs as one statement set, over the catalog's tables (create_catalog)."""
    values = recipe_values(config)
    for statement in sql_files.render("analytics/inputs.sql", **values):
        t_env.execute_sql(statement)
    statement_set = t_env.create_statement_set()
    grains = config.grains()
    for recipe in config.recipes:
        for grain in RECIPE_GRAINS[recipe] or (None,):
            extra = grain_values(grain, *grains[grain]) if grain else {}
            for statement in sql_files.render(f"analytics/{recipe}.sql", **values, **extra):
                statement_set.add_insert_sql(statement)
    return statement_set


def main(argv: list[str] | None = None) -> None:
    config = AnalyticsConfig.from_args(argv)
    if config.flink.overrides().get("table.exec.mini-batch.enabled", "false").lower() == "true":
        raise SystemExit("analytics: table.exec.mini-batch.enabled=true would misclassify events as late "
                         "(see NO_MINI_BATCH in jobs/analytics.py)")
    t_env = table_environment(config.flink, JOB_NAME, job_options(config))
    create_catalog(t_env, config)
    execute(t_env, build_pipeline(t_env, config), JOB_NAME, config.bounded)


if __name__ == "__main__":
    main(sys.argv[1:])
