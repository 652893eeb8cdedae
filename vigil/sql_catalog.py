"""Vigil's Flink catalog (sql/catalog/): the Kafka streams and the PostgreSQL serving tables as
Flink tables in a catalog `vigil` (databases `streams` and `analytics`), rendered with the local
defaults or a job's settings.

One declaration serves the SQL client and gateway sessions (vigil/sql_cli.py) and the analytics
job (jobs/analytics.py). The streams' column lists are taken from the DDL the jobs write with
(sql/ddl/*.sql, whose placeholders jobs/fraud_sql.py fills), so a column added there reaches the
catalog without a second edit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from string import Template

from vigil import sql_files, topics
from vigil.event_model import UNITS_PER_USD

Fragment = sql_files.Fragment
CATALOG = "vigil"
STREAMS_DB = "streams"
SERVING_DB = "analytics"


@dataclass(frozen=True)
class CatalogSettings:
    """What the catalog's tables connect to. Defaults: the local platform (vigil infra up)."""

    bootstrap: str
    schema_registry_url: str
    jdbc_url: str = ""
    jdbc_user: str = ""
    jdbc_password: str = ""
    clean_topic: str = topics.CLEAN
    dlq_topic: str = topics.DLQ
    alerts_topic: str = topics.ALERTS
    scores_topic: str = topics.SCORES
    incidents_topic: str = topics.INCIDENTS
    features_topic: str = topics.FEATURES
    group_id: str = "vigil-sql"
    # Where reading starts: an analyst's query reads a topic from its start (a job restored from a
    # savepoint resumes from its offsets in it); the analytics job starts at its consumer group's
    # committed offsets ('group-offsets', else the earliest), as the other jobs do.
    startup_mode: str = "earliest-offset"
    out_of_orderness_s: int = 5
    # Kafka sources stop at the end offsets found at start (tests, replays).
    bounded: bool = False
    flush_interval: str = "1 s"
    flush_rows: int = 5000

    @staticmethod
    def local() -> "CatalogSettings":
        """The local platform's endpoints; the JDBC URL and writer credentials from the local
        PostgreSQL (vigil.serving.postgres), empty where it has never been set up."""
        from vigil.kafka_broker import BrokerSettings
        from vigil.registry.service import registry_url

        jdbc_url, user, password = local_jdbc()
        return CatalogSettings(bootstrap=os.environ.get("VIGIL_BOOTSTRAP", BrokerSettings().bootstrap),
                               schema_registry_url=registry_url(), jdbc_url=jdbc_url, jdbc_user=user,
                               jdbc_password=password)


def local_jdbc() -> tuple[str, str, str]:
    """(JDBC URL, writer user, writer password) of the local PostgreSQL, or empty strings when the
    serving database is not set up here (the streams still work without it)."""
    try:
        from vigil.serving import postgres
        user, password = postgres.writer_credentials()
        return postgres.jdbc_url(), user, password
    except Exception:  # noqa: BLE001 - no PostgreSQL yet: the catalog's Kafka half still works
        return "", "", ""


def statements(settings: CatalogSettings, serving: bool = True) -> list[str]:
    """The catalog as SQL statements, in order: CREATE CATALOG, the databases, the streams, and
    (with `serving`) the JDBC tables. Ends in `vigil.streams`, so `SELECT * FROM events_clean` works."""
    head = [f"CREATE CATALOG {CATALOG} WITH ('type' = 'generic_in_memory', 'default-database' = '{STREAMS_DB}')",
            f"USE CATALOG {CATALOG}",
            f"CREATE DATABASE IF NOT EXISTS {SERVING_DB}"]
    streams = sql_files.render("catalog/streams.sql", **stream_values(settings))
    out = head + [f"USE {STREAMS_DB}"] + streams
    if serving:
        out += [f"USE {SERVING_DB}"] + sql_files.render("catalog/serving.sql", **serving_values(settings))
        out.append(f"USE {STREAMS_DB}")
    return out


def stream_values(settings: CatalogSettings) -> dict:
    range_options = f"'scan.startup.mode' = '{settings.startup_mode}',"
    if settings.bounded:
        range_options += " 'scan.bounded.mode' = 'latest-offset',"
    return dict(
        bootstrap=settings.bootstrap, schema_registry_url=settings.schema_registry_url,
        clean_topic=settings.clean_topic, dlq_topic=settings.dlq_topic, alerts_topic=settings.alerts_topic,
        scores_topic=settings.scores_topic, incidents_topic=settings.incidents_topic,
        features_topic=settings.features_topic, group_id=settings.group_id, startup_mode=settings.startup_mode,
        out_of_orderness_s=settings.out_of_orderness_s, range_options=Fragment(range_options),
        usd_per_unit=usd_per_unit_sql(), **column_lists(settings.out_of_orderness_s))


def serving_values(settings: CatalogSettings) -> dict:
    return dict(jdbc_url=settings.jdbc_url, jdbc_user=settings.jdbc_user, jdbc_password=settings.jdbc_password,
                flush_interval=settings.flush_interval, flush_rows=settings.flush_rows)


def column_lists(out_of_orderness_s: int) -> dict[str, Fragment]:
    """The streams' columns, from the DDL the jobs write and read them with."""
    from jobs.fraud_sql import DECISION_COLUMNS, FEATURE_COLUMNS

    fraud = dict(decision_columns=DECISION_COLUMNS, feature_columns=FEATURE_COLUMNS,
                 out_of_orderness_s=out_of_orderness_s)
    incidents = table_columns("ddl/fraud_tables.sql", "fraud_incidents", **fraud)
    return {
        "clean_columns": table_columns("ddl/fraud_tables.sql", "clean_events_source", **fraud),
        "alert_columns": table_columns("ddl/fraud_tables.sql", "fraud_alerts", **fraud),
        "incident_columns": _without_primary_key(incidents),
        "feature_table_columns": _without_primary_key(
            table_columns("ddl/fraud_tables.sql", "features_online", **fraud)),
        "dlq_columns": table_columns("ddl/dead_letter_table.sql", "${table_name}"),
    }


def table_columns(relative_path: str, table: str, **values) -> Fragment:
    """The column block of `CREATE TABLE <table> (...) WITH (` in a DDL file, with `values` filled in
    (other placeholders, which only the WITH options use, are left alone)."""
    text = sql_files.path_of(relative_path).read_text()
    pattern = re.compile(r"^CREATE TABLE " + re.escape(table) + r" \(\n(.*?)\n\) WITH \(", re.S | re.M)
    match = pattern.search(text)
    if not match:
        raise ValueError(f"{relative_path}: no CREATE TABLE {table} (...) WITH (")
    block = Template(match.group(1)).safe_substitute({k: str(v) for k, v in values.items()})
    if "${" in block:
        raise ValueError(f"{relative_path}: {table}'s columns have an unfilled placeholder: {block}")
    return Fragment(block.strip())


def _without_primary_key(columns: str) -> Fragment:
    """The columns of an upsert table without its PRIMARY KEY line (the plain Kafka connector,
    which reads every version, refuses a key)."""
    lines = [line for line in columns.splitlines() if not line.strip().upper().startswith("PRIMARY KEY")]
    last = max(i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("--"))
    lines[last] = lines[last].rstrip().rstrip(",")
    return Fragment("\n".join(lines))


def usd_per_unit_sql(currency: str = "currency") -> Fragment:
    """US dollars per unit of `currency`, as exact DECIMAL literals from the project's rates
    (UNITS_PER_USD, which the fraud job divides by in DOUBLE): amount * this is exact, so sums are
    exact too and a recomputation in Python's Decimal gives the same digits. Unlisted currencies
    count as USD, as in the fraud job.

    >>> usd_per_unit_sql()[:60]
    "(CASE currency WHEN 'AED' THEN 0.272479564033 WHEN 'ARS' THE"
    """
    cases = " ".join(f"WHEN '{code}' THEN {usd_per_unit(code)}" for code in sorted(UNITS_PER_USD))
    return Fragment(f"(CASE {currency} {cases} ELSE 1.000000000000 END)")


def usd_per_unit(currency: str) -> Decimal:
    """The factor usd_per_unit_sql uses for `currency` (12 decimals).

    >>> usd_per_unit("EUR"), usd_per_unit("USD"), usd_per_unit("XYZ")
    (Decimal('1.086956521739'), Decimal('1.000000000000'), Decimal('1.000000000000'))
    """
    units = Decimal(repr(UNITS_PER_USD.get(currency, 1.0)))
    return (Decimal(1) / units).quantize(Decimal("0.000000000001"))
