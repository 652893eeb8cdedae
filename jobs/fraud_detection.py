"""Fraud detection job: events.clean -> rule and pattern detections -> fraud.alerts (exactly-once).

Input  events.clean (avro-confluent, written by jobs/ingest.py), event time = event_time (UTC).
       Example: {"event_id": "e7f..", "event_time": 2026-11-26 15:00:01.250, "tenant_id": "t007",
       "user_id": "u0001234", "event_type": "payment_attempt", "amount": 1.50, "currency": "EUR",
       "card_fingerprint": "c9a..", "device_id": "d41..", ...}
       fraud.rules (compacted; key tenant_id, "*" = defaults): thresholds and switches, applied
       by event time, changeable at runtime (udfs/fraud_rules.py, `vigil rules`).
Output fraud.alerts: alert_id (deterministic), tenant, pattern, entity, triggering event, score,
       reason codes, evidence (JSON), rules version, decision time.
Patterns (sql/queries/fraud_patterns.sql, fraud_velocity.sql; all Flink SQL, in the JVM):
       card_testing, account_takeover (MATCH_RECOGNIZE), impossible_travel (MATCH_RECOGNIZE on
       consecutive events), velocity per card/user/device/ip over 1 min/10 min/1 h, shared_device
       (distinct accounts per device, 1 h), refund_abuse (30 days), amount_anomaly (z-score).
State  pattern buffers bounded by WITHIN; OVER windows by their ranges (up to 30 days for refunds);
       per-user device/country history expires after --history-ttl (table.exec.state.ttl).
Late   event time with --out-of-orderness bounded disorder; see ADR 0004 for what it costs.
Run    locally:  vigil run fraud_detection [--bounded]
       cluster:  vigil submit fraud_detection [flags]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

if __package__ in (None, ""):  # `flink run -py jobs/fraud_detection.py` runs this file as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfs import fraud_rules  # noqa: E402
from vigil import sql_files, topics  # noqa: E402
from vigil.event_model import UNITS_PER_USD  # noqa: E402
from vigil.flink_env import FlinkSettings, execute, table_environment, uid_settings  # noqa: E402
from vigil.kafka_broker import BrokerSettings  # noqa: E402
from vigil.registry.service import registry_url  # noqa: E402

JOB_NAME = "vigil-fraud"
Fragment = sql_files.Fragment
ENTITIES = {"card": "card_fingerprint", "user": "user_id", "device": "device_id", "ip": "ip"}
WINDOWS = {"1m": ("'1' MINUTE", "1 min", "velocity_1m"), "10m": ("'10' MINUTE", "10 min", "velocity_10m"),
           "1h": ("'1' HOUR", "1 h", "velocity_1h")}


@dataclass(frozen=True)
class FraudConfig:
    bootstrap: str = os.environ.get("VIGIL_BOOTSTRAP", BrokerSettings().bootstrap)
    schema_registry_url: str = registry_url()
    clean_topic: str = topics.CLEAN
    rules_topic: str = topics.RULES
    alerts_topic: str = topics.ALERTS
    group_id: str = "vigil-fraud"
    transactional_id_prefix: str = "vigil-fraud"
    bounded: bool = False                 # stop at the end offsets found at start (tests, quality bench)
    out_of_orderness_s: int = 5
    history_ttl: str = "30 d"             # per-user device/country history for account takeover
    transaction_timeout_ms: int = 900_000
    flink: FlinkSettings = field(default_factory=FlinkSettings)

    @staticmethod
    def from_args(argv: list[str] | None = None) -> "FraudConfig":
        p = argparse.ArgumentParser(prog="fraud_detection", description=__doc__.split("\n")[0])
        d = FraudConfig()
        p.add_argument("--bootstrap", default=d.bootstrap)
        p.add_argument("--schema-registry-url", default=d.schema_registry_url)
        p.add_argument("--clean-topic", default=d.clean_topic)
        p.add_argument("--rules-topic", default=d.rules_topic)
        p.add_argument("--alerts-topic", default=d.alerts_topic)
        p.add_argument("--group-id", default=d.group_id)
        p.add_argument("--transactional-id-prefix", default=d.transactional_id_prefix)
        p.add_argument("--bounded", action="store_true", help="stop at the offsets that exist at start")
        p.add_argument("--out-of-orderness", type=int, default=d.out_of_orderness_s, metavar="SECONDS")
        p.add_argument("--history-ttl", default=d.history_ttl, help="state TTL, e.g. '30 d'")
        FlinkSettings.add_arguments(p)
        a = p.parse_args(argv)
        return FraudConfig(
            bootstrap=a.bootstrap, schema_registry_url=a.schema_registry_url, clean_topic=a.clean_topic,
            rules_topic=a.rules_topic, alerts_topic=a.alerts_topic, group_id=a.group_id,
            transactional_id_prefix=a.transactional_id_prefix, bounded=a.bounded,
            out_of_orderness_s=a.out_of_orderness, history_ttl=a.history_ttl,
            flink=FlinkSettings.from_parsed(a, bounded=a.bounded))


def effective_rules_sql() -> Fragment:
    """COALESCE(tenant row, "*" row, compiled default) for every rule parameter."""
    return Fragment(",\n       ".join(
        f"COALESCE(t.{name}, d.{name}, {fraud_rules.sql_literal(name)}) AS {name}"
        for name in fraud_rules.PARAMETERS))


def usd_rate_sql() -> Fragment:
    cases = " ".join(f"WHEN '{code}' THEN {rate!r}" for code, rate in sorted(UNITS_PER_USD.items()))
    return Fragment(f"(CASE currency {cases} ELSE 1.0 END)")


def haversine_sql(a: str = "A", b: str = "B") -> Fragment:
    """Great-circle distance in km between two located rows of a pattern."""
    return Fragment(
        f"6371.0 * 2 * ASIN(SQRT(POWER(SIN(RADIANS({b}.latitude - {a}.latitude) / 2), 2) + "
        f"COS(RADIANS({a}.latitude)) * COS(RADIANS({b}.latitude)) * "
        f"POWER(SIN(RADIANS({b}.longitude - {a}.longitude) / 2), 2)))")


def create_kafka_tables(t_env, config: FraudConfig) -> None:
    # Bounded runs (tests, quality benchmark) stop both sources at the offsets found at start.
    bounded = Fragment("'scan.bounded.mode' = 'latest-offset'," if config.bounded else "")
    for statement in sql_files.render(
            "ddl/fraud_tables.sql", bootstrap=config.bootstrap, clean_topic=config.clean_topic,
            rules_topic=config.rules_topic, alerts_topic=config.alerts_topic, group_id=config.group_id,
            schema_registry_url=config.schema_registry_url, out_of_orderness_s=config.out_of_orderness_s,
            transactional_id_prefix=config.transactional_id_prefix,
            transaction_timeout_ms=config.transaction_timeout_ms,
            bounded_option=bounded,
            rule_columns=Fragment(fraud_rules.sql_columns())):
        t_env.execute_sql(statement)


def pattern_views() -> list[str]:
    """Names of the alert views build_pipeline creates, in union order."""
    return (["alerts_card_testing", "alerts_account_takeover", "alerts_impossible_travel",
             "alerts_shared_device", "alerts_refund_abuse", "alerts_amount_anomaly"]
            + [f"alerts_velocity_{entity}_{window}" for entity in ENTITIES for window in WINDOWS])


def build_pipeline(t_env, config: FraudConfig):
    """Views over `clean_events` and `fraud_rules`; returns the statement set writing `fraud_alerts`."""
    for statement in sql_files.render(
            "queries/fraud_patterns.sql", effective_rules=effective_rules_sql(), usd_rate=usd_rate_sql(),
            haversine_km=haversine_sql(), out_of_orderness_s=config.out_of_orderness_s):
        t_env.execute_sql(statement)
    for entity, column in ENTITIES.items():
        for name, (interval, label, threshold) in WINDOWS.items():
            for statement in sql_files.render(
                    "queries/fraud_velocity.sql", entity_type=entity, entity_column=Fragment(column),
                    window_name=name, window_label=label, window_interval=Fragment(interval),
                    threshold=Fragment(threshold)):
                t_env.execute_sql(statement)
    # Some views keep event_time as a time attribute, pattern measures do not: a union needs one type.
    union = "\nUNION ALL\n".join(
        f"SELECT tenant_id, fraud_pattern, entity_type, entity_id, event_id, "
        f"CAST(event_time AS TIMESTAMP(3)) AS event_time, score, evidence, rules_effective_from FROM {view}"
        for view in pattern_views())
    statement_set = t_env.create_statement_set()
    statement_set.add_insert_sql(f"""
        INSERT INTO fraud_alerts
        SELECT tenant_id || ':' || entity_id,
               SHA2(CONCAT_WS('|', tenant_id, fraud_pattern, entity_type, entity_id, event_id), 256),
               tenant_id, fraud_pattern, entity_type, entity_id, event_id, event_time,
               CAST(score AS DOUBLE), ARRAY[fraud_pattern], evidence, rules_effective_from,
               CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3))
        FROM ({union})""")
    return statement_set


def main(argv: list[str] | None = None) -> None:
    config = FraudConfig.from_args(argv)
    t_env = table_environment(config.flink, JOB_NAME,
                              {"table.exec.state.ttl": config.history_ttl, **uid_settings(JOB_NAME)})
    create_kafka_tables(t_env, config)
    execute(t_env, build_pipeline(t_env, config), JOB_NAME, config.bounded)


if __name__ == "__main__":
    main(sys.argv[1:])
