"""The analytics job's configuration (jobs/analytics.py): flags, topics, the serving database,
windows, the hot-key options, and `command`, its command line on a set of topics (tests, benches)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from vigil import sql_catalog, topics
from vigil.flink_env import FlinkSettings
from vigil.kafka_broker import BrokerSettings
from vigil.registry.service import registry_url

JOB_NAME = "vigil-analytics"
RECIPES = ("sales", "products", "quality", "fraud_mirrors")


@dataclass(frozen=True)
class AnalyticsConfig:
    bootstrap: str = os.environ.get("VIGIL_BOOTSTRAP", BrokerSettings().bootstrap)
    schema_registry_url: str = registry_url()
    clean_topic: str = topics.CLEAN
    dlq_topic: str = topics.DLQ
    alerts_topic: str = topics.ALERTS
    incidents_topic: str = topics.INCIDENTS
    features_topic: str = topics.FEATURES
    # JDBC URL and the writer role's credentials; empty: the local PostgreSQL's (vigil.serving.postgres).
    jdbc_url: str = ""
    jdbc_user: str = ""
    jdbc_password: str = ""
    group_id: str = "vigil-analytics"
    bounded: bool = False                 # stop at the end offsets found at start (tests)
    out_of_orderness_s: int = 5           # the events' watermark bound, as the ingest job's
    # How often a running window is emitted, in seconds of event time (CUMULATE steps; ADR 0011).
    minute_step_s: int = 5
    hour_step_s: int = 60
    day_step_s: int = 60
    # The JDBC sink writes its buffer every flush_interval or flush_rows rows, and at checkpoints.
    flush_interval: str = "1 s"
    flush_rows: int = 5000
    # Processing-time TTL of the quality counts (the job's only non-window state): sql/analytics/quality.sql.
    quality_ttl: str = "36 h"
    # Hot keys (ADR 0011, bench/analytics_job.py): window aggregations in two phases (local-global)
    # by default; distinct counts split into buckets only on request: with CUMULATE windows every
    # bucket is re-emitted at every step, which costs far more than the hot keys it relieves.
    agg_phase: str = "TWO_PHASE"
    split_distinct: bool = False
    recipes: tuple[str, ...] = RECIPES
    flink: FlinkSettings = field(default_factory=FlinkSettings)

    @staticmethod
    def from_args(argv: list[str] | None = None) -> "AnalyticsConfig":
        p = argparse.ArgumentParser(prog="analytics", description="Analytics job: events.clean, events.dlq and the "
                                    "fraud outputs -> per tenant aggregates and mirrors in PostgreSQL.")
        d = AnalyticsConfig()
        p.add_argument("--bootstrap", default=d.bootstrap)
        p.add_argument("--schema-registry-url", default=d.schema_registry_url)
        p.add_argument("--clean-topic", default=d.clean_topic)
        p.add_argument("--dlq-topic", default=d.dlq_topic)
        p.add_argument("--alerts-topic", default=d.alerts_topic)
        p.add_argument("--incidents-topic", default=d.incidents_topic)
        p.add_argument("--features-topic", default=d.features_topic)
        p.add_argument("--jdbc-url", default=d.jdbc_url, help="default: the local PostgreSQL's")
        p.add_argument("--jdbc-user", default=d.jdbc_user, help="default: the local writer role")
        p.add_argument("--jdbc-password", default=d.jdbc_password,
                       help="default: the local writer role's (VIGIL_JDBC_PASSWORD is read too)")
        p.add_argument("--group-id", default=d.group_id)
        p.add_argument("--bounded", action="store_true", help="stop at the offsets that exist at start")
        p.add_argument("--out-of-orderness", type=int, default=d.out_of_orderness_s, metavar="SECONDS")
        p.add_argument("--minute-step-s", type=int, default=d.minute_step_s,
                       help="emit the running minute every N s of event time (divides 60)")
        p.add_argument("--hour-step-s", type=int, default=d.hour_step_s, help="divides 3600")
        p.add_argument("--day-step-s", type=int, default=d.day_step_s, help="divides 86400")
        p.add_argument("--flush-interval", default=d.flush_interval)
        p.add_argument("--flush-rows", type=int, default=d.flush_rows)
        p.add_argument("--quality-ttl", default=d.quality_ttl)
        p.add_argument("--agg-phase", choices=["TWO_PHASE", "ONE_PHASE"], default=d.agg_phase,
                       help="table.optimizer.agg-phase-strategy (ONE_PHASE: to measure what two phases bring)")
        p.add_argument("--split-distinct", action="store_true",
                       help="table.optimizer.distinct-agg.split.enabled (costly with CUMULATE windows: ADR 0011)")
        p.add_argument("--recipe", action="append", choices=RECIPES,
                       help="run only these recipes (repeatable; default: all)")
        FlinkSettings.add_arguments(p)
        # Heap state: 2.5x less CPU per event than RocksDB here (docs/benchmarks.md, "Analytics
        # job"); the state is the open windows' rows and their distinct users, which fits the heap at
        # this platform's local volumes. At production volumes a day's distinct users per merchant
        # outgrow it: run with --state-backend rocksdb there (ADR 0011).
        p.set_defaults(state_backend="hashmap")
        a = p.parse_args(argv)
        for name, step, size in (("--minute-step-s", a.minute_step_s, 60), ("--hour-step-s", a.hour_step_s, 3600),
                                 ("--day-step-s", a.day_step_s, 86400)):
            if step <= 0 or size % step:
                p.error(f"{name} {step}: must divide {size} (CUMULATE windows are whole numbers of steps)")
        return AnalyticsConfig(
            bootstrap=a.bootstrap, schema_registry_url=a.schema_registry_url, clean_topic=a.clean_topic,
            dlq_topic=a.dlq_topic, alerts_topic=a.alerts_topic, incidents_topic=a.incidents_topic,
            features_topic=a.features_topic, jdbc_url=a.jdbc_url, jdbc_user=a.jdbc_user,
            jdbc_password=a.jdbc_password or os.environ.get("VIGIL_JDBC_PASSWORD", ""), group_id=a.group_id,
            bounded=a.bounded, out_of_orderness_s=a.out_of_orderness, minute_step_s=a.minute_step_s,
            hour_step_s=a.hour_step_s, day_step_s=a.day_step_s, flush_interval=a.flush_interval,
            flush_rows=a.flush_rows, quality_ttl=a.quality_ttl, agg_phase=a.agg_phase, split_distinct=a.split_distinct,
            recipes=tuple(dict.fromkeys(a.recipe)) if a.recipe else RECIPES,
            flink=FlinkSettings.from_parsed(a, bounded=a.bounded))

    def catalog_settings(self) -> sql_catalog.CatalogSettings:
        """The catalog (sql/catalog/) on this job's topics, consumer group and database. The JDBC
        URL and credentials not given are the local PostgreSQL's."""
        url, user, password = self.jdbc_url, self.jdbc_user, self.jdbc_password
        if not (url and user and password):
            local_url, local_user, local_password = sql_catalog.local_jdbc()
            url, user, password = url or local_url, user or local_user, password or local_password
        if not url:
            raise SystemExit("analytics: no PostgreSQL to write to: run `vigil infra up` (or pass --jdbc-url, "
                             "--jdbc-user, --jdbc-password)")
        return sql_catalog.CatalogSettings(
            bootstrap=self.bootstrap, schema_registry_url=self.schema_registry_url, jdbc_url=url, jdbc_user=user,
            jdbc_password=password, clean_topic=self.clean_topic, dlq_topic=self.dlq_topic,
            alerts_topic=self.alerts_topic, incidents_topic=self.incidents_topic, features_topic=self.features_topic,
            group_id=self.group_id, startup_mode="group-offsets", out_of_orderness_s=self.out_of_orderness_s,
            bounded=self.bounded,
            flush_interval=self.flush_interval, flush_rows=self.flush_rows)

    def grains(self) -> dict[str, tuple[int, int]]:
        """Window grain -> (step, size) in seconds."""
        return {"minute": (self.minute_step_s, 60), "hour": (self.hour_step_s, 3600), "day": (self.day_step_s, 86400)}


def command(names: dict, *extra: str) -> list[str]:
    """`python -m jobs.analytics` on the topics named by role in `names` (clean, dlq, alerts,
    incidents, features, prefix), as tests and benchmarks run it."""
    flags = {"clean": "--clean-topic", "dlq": "--dlq-topic", "alerts": "--alerts-topic",
             "incidents": "--incidents-topic", "features": "--features-topic"}
    args = [a for role, flag in flags.items() if role in names for a in (flag, names[role])]
    return [sys.executable, "-m", "jobs.analytics", *args, "--group-id", names["prefix"], *extra]
