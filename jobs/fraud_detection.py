"""Fraud detection job: events.clean -> patterns, features, River models -> one decision per event.

Input  events.clean (avro-confluent, written by jobs/ingest.py), event time = event_time (UTC).
       Example: {"event_id": "e7f..", "event_time": 2026-11-26 15:00:01.250, "tenant_id": "t007",
       "user_id": "u0001234", "event_type": "payment_attempt", "amount": 1.50, "currency": "EUR",
       "card_fingerprint": "c9a..", "device_id": "d41..", ...}
       fraud.rules (compacted; key tenant_id, "*" = defaults): thresholds and switches, applied
       by event time, changeable at runtime (vigil/fraud_rules.py, `vigil rules`).
       labels.chargebacks: delayed ground truth per payment, for the supervised model.
       Every source is read so that no record can fail the job: sql/queries/fraud_inputs.sql.
Output fraud.alerts (exactly-once): one decision per event with a pattern hit or a risk above the
       alert threshold: alert_id (deterministic), combined score, reason codes, evidence (JSON).
       fraud.scores (exactly-once): the same record for every payment attempt.
       features.online (exactly-once upsert): latest features per user, card, device, merchant.
       fraud.decisions (at-least-once): the low-latency decision of every payment (ADR 0005).
       fraud.dlq (exactly-once): every input record refused (undecodable event, unparseable or
       invalid rule or label) and every record a bug turned into `internal_error` (ADR 0006).
Patterns (sql/queries/fraud_patterns.sql, fraud_velocity.sql; all Flink SQL, in the JVM):
       card_testing, account_takeover (MATCH_RECOGNIZE), impossible_travel (LAG over a user's
       located events), velocity per card/user/device/ip over 1 min/10 min/1 h, shared_device
       (distinct accounts per device, 1 h), cross_tenant_card (distinct tenants per card, 24 h),
       refund_abuse (30 days), amount_anomaly (z-score).
Models udfs/fraud_scoring.py (River, per tenant, in event time), udfs/fast_path.py.
State  pattern buffers bounded by WITHIN; OVER windows by their ranges (up to 30 days for refunds);
       per-entity history expires after --history-ttl (table.exec.state.ttl); models, items
       awaiting the watermark and payment vectors awaiting labels in the risk scorer (ADR 0005).
Late   event time with --out-of-orderness bounded disorder; see ADR 0004 for what it costs.
Run    locally:  vigil run fraud_detection [--bounded]
       cluster:  vigil submit fraud_detection [flags]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, replace

if __package__ in (None, ""):  # `flink run -py jobs/fraud_detection.py` runs this file as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfs import fraud_features, fraud_scoring  # noqa: E402
from udfs.fraud_models import MODEL_VERSIONS, ModelConfig  # noqa: E402
from vigil import fraud_rules, sql_files, topics  # noqa: E402
from vigil.event_model import UNITS_PER_USD  # noqa: E402
from vigil.flink_env import FlinkSettings, execute, plan_once, stream_table_environment, uid_settings  # noqa: E402
from vigil.paths import state_dir  # noqa: E402
from vigil.kafka_broker import BrokerSettings  # noqa: E402
from vigil.registry.service import registry_url  # noqa: E402

JOB_NAME = "vigil-fraud"
FAST_JOB_NAME = "vigil-fraud-fast"   # --paths fast
PATHS = ("both", "exact", "fast")


def default_model_dir() -> str:
    return os.environ.get("VIGIL_MODEL_DIR", str(state_dir() / "models"))

Fragment = sql_files.Fragment
# Copies of the "*" rules, each joined by the events of one shard: more than the job's parallelism,
# so no subtask sees all events (sql/queries/fraud_inputs.sql: default_rules).
DEFAULT_RULE_SHARDS = 32
ENTITIES = {"card": "card_fingerprint", "user": "user_id", "device": "device_id", "ip": "ip"}


@dataclass(frozen=True)
class FraudConfig:
    bootstrap: str = os.environ.get("VIGIL_BOOTSTRAP", BrokerSettings().bootstrap)
    schema_registry_url: str = registry_url()
    clean_topic: str = topics.CLEAN
    rules_topic: str = topics.RULES
    alerts_topic: str = topics.ALERTS
    scores_topic: str = topics.SCORES
    features_topic: str = topics.FEATURES
    chargebacks_topic: str = topics.CHARGEBACKS
    decisions_topic: str = topics.DECISIONS
    dlq_topic: str = topics.FRAUD_DLQ
    fast_path: bool = True                # the low-latency decisions (docs/adr/0005)
    # Which decision paths this job runs: "both" in one job (local runs, tests), or "exact" and
    # "fast" as two jobs, so that the exact path's backlog never delays a fast decision (ADR 0007).
    paths: str = "both"
    scorer: str = "river"                 # "jvm": fixed weights in SQL, the benchmarks' baseline
    buffer_timeout_ms: int = 5
    watermark_interval_ms: int = 200      # how often sources emit watermarks (Flink's default)
    object_reuse: bool = False
    group_id: str = "vigil-fraud"
    transactional_id_prefix: str = "vigil-fraud"
    bounded: bool = False                 # stop at the end offsets found at start (tests, quality bench)
    out_of_orderness_s: int = 5
    history_ttl: str = "30 d"             # per-user device/country history for account takeover
    transaction_timeout_ms: int = 900_000
    label_horizon_s: int = 7 * 24 * 3600  # payment vectors kept for their chargeback label
    # How long a quiet labels topic holds back the watermark. Replays that must score identically
    # (tests, benchmarks) give the labels source time to start: 30 s.
    labels_idle_timeout: str = "5 s"
    models: ModelConfig = field(default_factory=lambda: ModelConfig(snapshot_dir=default_model_dir()))
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
        p.add_argument("--scores-topic", default=d.scores_topic)
        p.add_argument("--features-topic", default=d.features_topic)
        p.add_argument("--chargebacks-topic", default=d.chargebacks_topic)
        p.add_argument("--decisions-topic", default=d.decisions_topic)
        p.add_argument("--dlq-topic", default=d.dlq_topic, help="refused inputs and internal errors")
        p.add_argument("--no-fast-path", action="store_true", help="exactly-once outputs only")
        p.add_argument("--paths", choices=PATHS, default=d.paths,
                       help="exact: patterns, scores, features, alerts; fast: low-latency decisions only; "
                            "both: one job (run exact and fast as two jobs in production)")
        p.add_argument("--scorer", choices=["river", "jvm"], default=d.scorer,
                       help="jvm: both decision paths in SQL with fixed weights, no Python (a baseline)")
        p.add_argument("--buffer-timeout-ms", type=int, default=d.buffer_timeout_ms,
                       help="network buffer flush interval (latency vs CPU)")
        p.add_argument("--watermark-interval-ms", type=int, default=d.watermark_interval_ms,
                       help="watermark period: event-time operators work once per watermark and key")
        p.add_argument("--object-reuse", action="store_true", help="Flink's pipeline.object-reuse")
        p.add_argument("--group-id", default=d.group_id)
        p.add_argument("--transactional-id-prefix", default=d.transactional_id_prefix)
        p.add_argument("--bounded", action="store_true", help="stop at the offsets that exist at start")
        p.add_argument("--out-of-orderness", type=int, default=d.out_of_orderness_s, metavar="SECONDS")
        p.add_argument("--history-ttl", default=d.history_ttl, help="state TTL, e.g. '30 d'")
        p.add_argument("--label-horizon-s", type=int, default=d.label_horizon_s)
        p.add_argument("--labels-idle-timeout", default=d.labels_idle_timeout)
        m = d.models
        p.add_argument("--anomaly-model", default=m.anomaly, help=f"one of {', '.join(MODEL_VERSIONS)}")
        p.add_argument("--supervised-model", default=m.supervised)
        p.add_argument("--shadow-model", default=m.shadow, help="scored beside the live models, not in the risk")
        p.add_argument("--alert-threshold", type=float, default=m.alert_threshold)
        p.add_argument("--model-snapshot-dir", default=m.snapshot_dir)
        p.add_argument("--snapshot-every", type=int, default=m.snapshot_every, metavar="STEPS")
        FlinkSettings.add_arguments(p)
        # Heap state: this job's state is bounded by its windows and TTLs, and with RocksDB its
        # 1-hour RANGE windows scan their state on every timer (9x slower; ADR 0005).
        p.set_defaults(state_backend="hashmap")
        a = p.parse_args(argv)
        config = FraudConfig(
            bootstrap=a.bootstrap, schema_registry_url=a.schema_registry_url, clean_topic=a.clean_topic,
            rules_topic=a.rules_topic, alerts_topic=a.alerts_topic, scores_topic=a.scores_topic,
            features_topic=a.features_topic, chargebacks_topic=a.chargebacks_topic,
            decisions_topic=a.decisions_topic, dlq_topic=a.dlq_topic, fast_path=not a.no_fast_path, paths=a.paths,
            scorer=a.scorer,
            buffer_timeout_ms=a.buffer_timeout_ms, watermark_interval_ms=a.watermark_interval_ms,
            object_reuse=a.object_reuse, group_id=a.group_id,
            transactional_id_prefix=a.transactional_id_prefix, bounded=a.bounded,
            out_of_orderness_s=a.out_of_orderness, history_ttl=a.history_ttl, label_horizon_s=a.label_horizon_s,
            labels_idle_timeout=a.labels_idle_timeout,
            models=ModelConfig(anomaly=a.anomaly_model, supervised=a.supervised_model, shadow=a.shadow_model,
                               alert_threshold=a.alert_threshold, snapshot_dir=a.model_snapshot_dir,
                               snapshot_every=a.snapshot_every),
            flink=FlinkSettings.from_parsed(a, bounded=a.bounded))
        # The fast job beside the exact one, on the same flags: its own consumer group and
        # transaction ids (two producers with one transactional id fence each other).
        if config.paths == "fast":
            config = replace(config, group_id=f"{config.group_id}-fast",
                             transactional_id_prefix=f"{config.transactional_id_prefix}-fast")
        return config

    @property
    def runs_exact(self) -> bool:
        return self.paths in ("both", "exact")

    @property
    def runs_fast(self) -> bool:
        return self.fast_path and self.paths in ("both", "fast")

    @property
    def job_name(self) -> str:
        return FAST_JOB_NAME if self.paths == "fast" else JOB_NAME



def effective_rules_sql() -> Fragment:
    """COALESCE(tenant row, "*" row, compiled default) for every rule parameter."""
    return Fragment(",\n       ".join(
        f"COALESCE(t.{name}, d.{name}, {fraud_rules.sql_literal(name)}) AS {name}"
        for name in fraud_rules.PARAMETERS))


def usd_rate_sql() -> Fragment:
    cases = " ".join(f"WHEN '{code}' THEN {rate!r}" for code, rate in sorted(UNITS_PER_USD.items()))
    return Fragment(f"(CASE currency {cases} ELSE 1.0 END)")


def haversine_sql(lat1: str, lon1: str, lat2: str, lon2: str) -> Fragment:
    """Great-circle distance in km between two points given as SQL expressions (degrees)."""
    return Fragment(
        f"6371.0 * 2 * ASIN(SQRT(POWER(SIN(RADIANS({lat2} - {lat1}) / 2), 2) + "
        f"COS(RADIANS({lat1})) * COS(RADIANS({lat2})) * "
        f"POWER(SIN(RADIANS({lon2} - {lon1}) / 2), 2)))")


def create_kafka_tables(t_env, config: FraudConfig) -> None:
    # Bounded runs (tests, quality benchmark) stop both sources at the offsets found at start.
    bounded = Fragment("'scan.bounded.mode' = 'latest-offset'," if config.bounded else "")
    for statement in sql_files.render(
            "ddl/fraud_tables.sql", bootstrap=config.bootstrap, clean_topic=config.clean_topic,
            rules_topic=config.rules_topic, alerts_topic=config.alerts_topic, scores_topic=config.scores_topic,
            features_topic=config.features_topic, chargebacks_topic=config.chargebacks_topic,
            decisions_topic=config.decisions_topic, dlq_topic=config.dlq_topic, group_id=config.group_id,
            schema_registry_url=config.schema_registry_url, out_of_orderness_s=config.out_of_orderness_s,
            transactional_id_prefix=config.transactional_id_prefix,
            transaction_timeout_ms=config.transaction_timeout_ms,
            bounded_option=bounded, labels_idle_timeout=config.labels_idle_timeout,
            rule_columns=Fragment(fraud_rules.sql_columns()), decision_columns=DECISION_COLUMNS,
            feature_columns=FEATURE_COLUMNS):
        t_env.execute_sql(statement)
    t_env.execute_sql(sql_files.dead_letter_table("fraud_dlq", config.dlq_topic, config.bootstrap,
                                                  config.transactional_id_prefix, config.transaction_timeout_ms))


_SQL_TYPES = {"string": "STRING", "double": "DOUBLE", "long": "BIGINT", "time": "TIMESTAMP(3)",
              "strings": "ARRAY<STRING>"}
# The topics' columns of the decision record (udfs/fraud_scoring.DECISION_FIELDS, less its route).
_DECISION_TYPES = {name: _SQL_TYPES[kind] for name, kind in fraud_scoring.DECISION_FIELDS if name != "output"}
DECISION_COLUMNS = Fragment(",\n  ".join(f"{name} {kind}" for name, kind in _DECISION_TYPES.items()))
_FEATURE_TYPES = {name: "DOUBLE" if name in ("amount_usd_1h", "km_per_hour_since_last", "amount_z_1h") else "BIGINT"
                  for name in fraud_features.FEATURES}
FEATURE_COLUMNS = Fragment(",\n  ".join(f"{name} {kind}" for name, kind in _FEATURE_TYPES.items()))


def pattern_views() -> list[str]:
    """Names of the alert views build_pipeline creates, in union order."""
    return (["alerts_card_testing", "alerts_account_takeover", "alerts_impossible_travel",
             "alerts_shared_device", "alerts_cross_tenant_card", "alerts_refund_abuse", "alerts_amount_anomaly"]
            + [f"alerts_velocity_{entity}" for entity in ENTITIES])


# Each source's verdicts view and its time attribute (sql/queries/fraud_verdicts.sql).
_VERDICTS = {"event_verdicts": "row_time", "rule_verdicts": "effective_from", "label_verdicts": "label_ts"}


def create_input_views(t_env, config: FraudConfig) -> None:
    """clean_events, fraud_rules (versioned), chargeback_labels and input_rejections over the
    raw sources (sql/queries/fraud_verdicts.sql, fraud_inputs.sql); each source is read, decoded
    and checked once for the whole job (plan_once)."""
    from udfs.fraud_input_udfs import check_rule_udf, rule_fields_sql

    t_env.create_temporary_function("check_rule", check_rule_udf())
    t_env.create_java_temporary_system_function("byte_length", "vigil.flink.functions.ByteLength")
    for statement in sql_files.render(
            "queries/fraud_verdicts.sql", rule_fields=Fragment(rule_fields_sql()),
            events_missing=missing_columns_sql("event_id", "event_time", "tenant_id", "user_id", "event_type"),
            labels_missing=missing_columns_sql("tenant_id", "event_id", "event_time", "label_time", "is_fraud")):
        t_env.execute_sql(statement)
    for view, rowtime in _VERDICTS.items():
        if config.runs_exact:
            plan_once(t_env, f"{view}_query", view, rowtime=rowtime)
        else:  # the fast job is planned in one part and reads events only (a view no output reads adds no source)
            t_env.create_temporary_view(view, t_env.from_path(f"{view}_query"))
    for statement in sql_files.render(
            "queries/fraud_inputs.sql", rule_names=Fragment(", ".join(fraud_rules.PARAMETERS)),
            clean_topic=config.clean_topic, rules_topic=config.rules_topic,
            chargebacks_topic=config.chargebacks_topic, last_shard=DEFAULT_RULE_SHARDS - 1,
            shards=Fragment("ARRAY[" + ", ".join(str(i) for i in range(DEFAULT_RULE_SHARDS)) + "]")):
        t_env.execute_sql(statement)


def missing_columns_sql(*columns: str) -> Fragment:
    """SQL naming the columns among `columns` that are null, comma separated ('' if none is).

    >>> missing_columns_sql("a", "b")
    "CONCAT_WS(', ', IF(a IS NULL, 'a', CAST(NULL AS STRING)), IF(b IS NULL, 'b', CAST(NULL AS STRING)))"
    """
    return Fragment("CONCAT_WS(', ', " + ", ".join(
        f"IF({column} IS NULL, '{column}', CAST(NULL AS STRING))" for column in columns) + ")")


def create_event_views(t_env, exact: bool = True) -> None:
    """keyed_events_query (before any per-user state: the low-latency path reads it), then
    user_activity and keyed_events, computed once for the whole job (sql/queries/fraud_events.sql)."""
    t_env.create_java_temporary_system_function("hour_features", "vigil.flink.functions.HourFeatures")
    t_env.create_java_temporary_system_function("user_activity", "vigil.flink.functions.UserActivity")
    for statement in sql_files.render("queries/fraud_events.sql", usd_rate=usd_rate_sql(),
                                      default_rule_shards=DEFAULT_RULE_SHARDS):
        t_env.execute_sql(statement)
    if not exact:
        return
    plan_once(t_env, "user_activity_query", "user_activity", rowtime="event_time")
    columns = [name for name in t_env.from_path("user_activity").get_schema().get_field_names() if name != "a"]
    t_env.execute_sql(f"CREATE TEMPORARY VIEW keyed_events AS SELECT {', '.join(columns)} FROM user_activity")


def create_pattern_views(t_env, config: FraudConfig) -> None:
    """The SQL detections (patterns, rules, velocity) and the union `pattern_hits`; the events
    they test are joined to the rules once (ruled_events)."""
    t_env.create_java_temporary_system_function("payment_velocity", "vigil.flink.functions.PaymentVelocity")
    for statement in sql_files.render("queries/fraud_ruled_events.sql", effective_rules=effective_rules_sql()):
        t_env.execute_sql(statement)
    plan_once(t_env, "ruled_events_query", "ruled_events", rowtime="event_time")
    for statement in sql_files.render(
            "queries/fraud_patterns.sql", effective_rules=effective_rules_sql(),
            haversine_km=haversine_sql("A_latitude", "A_longitude", "latitude", "longitude"),
            out_of_orderness_s=config.out_of_orderness_s):
        t_env.execute_sql(statement)
    for entity, column in ENTITIES.items():
        for statement in sql_files.render("queries/fraud_velocity.sql", entity_type=entity,
                                          entity_column=Fragment(column)):
            t_env.execute_sql(statement)
    # Some views keep event_time as a time attribute, pattern measures do not: a union needs one type.
    t_env.execute_sql("CREATE TEMPORARY VIEW pattern_hits AS\n" + "\nUNION ALL\n".join(
        f"SELECT tenant_id, fraud_pattern, entity_type, entity_id, event_id, "
        f"CAST(event_time AS TIMESTAMP(3)) AS event_time, CAST(appended_at AS TIMESTAMP(3)) AS appended_at, "
        f"CAST(score AS DOUBLE) AS score, evidence, rules_effective_from FROM {view}"
        for view in pattern_views()))


def create_feature_views(t_env, exact: bool = True) -> None:
    """features_<entity> for user, card, device and merchant in event time (`exact`), and
    features_user_now (users, in arrival order) for the low-latency path
    (sql/queries/fraud_features.sql). Users' hour comes from user_activity (fraud_events.sql), the
    other entities' from hour_features."""
    haversine = haversine_sql("prev_latitude", "prev_longitude", "latitude", "longitude")
    # On arrival: before user_activity, whose rows wait for the watermark.
    t_env.execute_sql("CREATE TEMPORARY VIEW arriving_events AS SELECT *, PROCTIME() AS proc_time "
                      "FROM keyed_events_query")
    variants = []
    if exact:
        variants.append(("user", "user", "user_id", Fragment("a"), "user_activity"))
        variants += [(entity, entity, column, hour_features_over(column, "event_time"), "keyed_events")
                     for entity, column in fraud_features.ENTITY_COLUMNS.items() if entity != "user"]
    variants.append(("user_now", "user", "user_id", hour_features_over("user_id", "proc_time"), "arriving_events"))
    for view_name, entity, column, hour_row, source_view in variants:
        for statement in sql_files.render(
                "queries/fraud_features.sql", view_name=view_name, entity_type=entity,
                entity_column=Fragment(column), hour_row=hour_row,
                source_view=Fragment(source_view), haversine_km=haversine):
            t_env.execute_sql(statement)


def hour_features_over(column: str, time_column: str) -> Fragment:
    """hour_features over the events of one entity (`column`), ordered by `time_column`."""
    return Fragment(
        "hour_features(event_time, event_type, amount_usd, user_id, device_id, card_fingerprint, ip, country, "
        f"latitude, longitude) OVER (PARTITION BY tenant_id, {column} ORDER BY {time_column} "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")


def features_json_sql() -> str:
    return "JSON_OBJECT(" + ", ".join(f"'{name}' VALUE {name}"
                                      for name in ("amount_usd",) + fraud_features.FEATURES) + ")"


_FAST_COLUMNS = ("record_key", "alert_id", "tenant_id", "event_id", "user_id", "amount_usd", "score", "reason_codes",
                 "anomaly_score", "supervised_score", "model_steps", "features", "appended_at", "decided_at",
                 "decision_latency_ms")


def fast_decisions_sql(scorer: str = "river") -> str:
    """The low-latency path: payments scored on arrival (udfs/fast_path.py); `error` is set
    instead of a decision when the scorer failed on the payment. With the JVM baseline scorer,
    the same fixed weights as its exact path, in SQL."""
    decision = "fast_decision(tenant_id, features)"
    if scorer == "jvm":
        decision = (f"CAST(ROW({_JVM_RISK}, ARRAY['fixed_weights'], CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), "
                    f"CAST(0 AS BIGINT), {now_ms_sql()}, CAST(NULL AS STRING)) AS ROW<score DOUBLE, "
                    "reason_codes ARRAY<STRING>, anomaly_score DOUBLE, supervised_score DOUBLE, model_steps BIGINT, "
                    "decided_ms BIGINT, error STRING>)")
    return f"""
        SELECT tenant_id || ':' || event_id AS record_key, SHA2(tenant_id || '|' || event_id, 256) AS alert_id,
               tenant_id, event_id, entity_id AS user_id, amount_usd, d.score AS score, d.reason_codes AS reason_codes,
               d.anomaly_score AS anomaly_score, d.supervised_score AS supervised_score,
               d.model_steps AS model_steps, features, CAST(appended_at AS TIMESTAMP(3)) AS appended_at,
               CAST(TO_TIMESTAMP_LTZ(d.decided_ms, 3) AS TIMESTAMP(3)) AS decided_at,
               d.decided_ms - {epoch_ms_sql("CAST(appended_at AS TIMESTAMP(3))")} AS decision_latency_ms,
               d.error AS error
        FROM (SELECT *, {decision} AS d
              FROM (SELECT *, {features_json_sql()} AS features FROM features_user_now
                    WHERE event_type = 'payment_attempt'))"""


def epoch_ms_sql(timestamp: str) -> str:
    """Epoch milliseconds of a TIMESTAMP(3) expression (UTC). Flink has no direct function; whole
    minutes keep TIMESTAMPDIFF inside INT for millennia. Times cross to Python as numbers: thread
    mode hands Java time objects to Python unconverted."""
    return (f"(CAST(TIMESTAMPDIFF(MINUTE, TIMESTAMP '1970-01-01 00:00:00', {timestamp}) AS BIGINT) * 60000"
            f" + EXTRACT(SECOND FROM {timestamp}) * 1000 + EXTRACT(MILLISECOND FROM {timestamp}))")


def now_ms_sql() -> str:
    """Epoch milliseconds of the moment a row is processed (streaming evaluates it per row)."""
    return epoch_ms_sql("CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3))")


def decision_inputs_sql() -> str:
    """One stream for the decision step: payments with their user's features, pattern hits,
    chargeback labels (udfs/fraud_scoring.py). Times are epoch milliseconds."""
    ms = epoch_ms_sql
    return f"""
        SELECT 'payment' AS kind, tenant_id, event_id, {ms("event_time")} AS event_ms,
               {ms("CAST(appended_at AS TIMESTAMP(3))")} AS appended_ms, 'user' AS entity_type, entity_id,
               CAST(NULL AS STRING) AS fraud_pattern, CAST(NULL AS DOUBLE) AS score,
               {features_json_sql()} AS detail,
               CAST(NULL AS BIGINT) AS rules_ms, CAST(NULL AS BOOLEAN) AS is_fraud, CAST(NULL AS BIGINT) AS label_ms
        FROM features_user WHERE event_type = 'payment_attempt'
        UNION ALL
        SELECT 'hit', tenant_id, event_id, {ms("event_time")}, {ms("appended_at")}, entity_type, entity_id,
               fraud_pattern, score, evidence, {ms("rules_effective_from")}, CAST(NULL AS BOOLEAN),
               CAST(NULL AS BIGINT)
        FROM pattern_hits
        UNION ALL
        SELECT 'label', tenant_id, event_id, event_time, CAST(NULL AS BIGINT), 'user', CAST(NULL AS STRING),
               CAST(NULL AS STRING), CAST(NULL AS DOUBLE), outcome, CAST(NULL AS BIGINT), is_fraud, label_time
        FROM chargeback_labels"""


# The JVM baseline's fixed weights: a logistic score of the user's features (no learning).
_JVM_RISK = ("1.0 / (1.0 + EXP(5.0 - 0.15 * payments_1h - 0.8 * COALESCE(amount_z_1h, 0.0)"
             " - 0.5 * (distinct_cards_1h - 1) - 0.002 * COALESCE(km_per_hour_since_last, 0.0)))")


def jvm_decisions_sql() -> str:
    """The exact decision step without Python (--scorer jvm), in the risk scorer's output columns: a
    fixed-weight score for every payment, and an alert per pattern hit (not merged per event).
    It exists to measure what the River scorer costs against the same SQL (bench/fraud_throughput.py)."""
    ms = epoch_ms_sql
    now = now_ms_sql()
    common = (f"CAST(NULL AS DOUBLE) AS anomaly_score, CAST(NULL AS DOUBLE) AS supervised_score, "
              f"CAST(NULL AS DOUBLE) AS shadow_score, 'jvm-fixed-weights' AS model_versions")
    return f"""
        SELECT 'score' AS output, SHA2(tenant_id || '|' || event_id, 256) AS alert_id, tenant_id,
               CAST(NULL AS STRING) AS fraud_pattern, 'user' AS entity_type, entity_id, event_id,
               {ms("event_time")} AS event_time, {_JVM_RISK} AS score, CAST(ARRAY['fixed_weights'] AS ARRAY<STRING>) AS reason_codes,
               CAST(NULL AS STRING) AS evidence, CAST(NULL AS BIGINT) AS rules_effective_from, {common},
               {now} - {ms("CAST(appended_at AS TIMESTAMP(3))")} AS detection_latency_ms, {now} AS decided_at
        FROM features_user WHERE event_type = 'payment_attempt'
        UNION ALL
        SELECT 'alert', SHA2(tenant_id || '|' || event_id, 256), tenant_id, fraud_pattern, entity_type, entity_id,
               event_id, {ms("event_time")}, score, ARRAY[fraud_pattern], evidence, {ms("rules_effective_from")},
               {common}, {now} - {ms("appended_at")}, {now}
        FROM pattern_hits"""


def build_pipeline(t_env, config: FraudConfig):
    """Views over `clean_events`, `fraud_rules` and `chargeback_labels`; returns the statement set
    writing the outputs of the paths the job runs (config.paths) and `fraud_dlq`."""
    create_input_views(t_env, config)
    create_event_views(t_env, exact=config.runs_exact)
    create_feature_views(t_env, exact=config.runs_exact)
    statement_set = t_env.create_statement_set()
    dead_letters = []
    if config.runs_exact:
        add_exact_outputs(t_env, config, statement_set)
        dead_letters += [dlq_columns_sql("input_rejections"), scorer_errors_sql()]
    if config.runs_fast:
        add_fast_outputs(t_env, config, statement_set)
        dead_letters.append(fast_path_errors_sql(config.job_name))
    statement_set.add_insert_sql("INSERT INTO fraud_dlq " + "\nUNION ALL\n".join(dead_letters))
    return statement_set


def add_exact_outputs(t_env, config: FraudConfig, statement_set) -> None:
    """Patterns, the risk scorer, and its outputs: fraud_alerts, fraud_scores, features_online."""
    from pyflink.common import Types

    from udfs.fraud_scorer_operator import OUTPUT_TYPE, RiskScorer

    create_pattern_views(t_env, config)
    if config.scorer == "jvm":
        t_env.create_temporary_view("decisions", t_env.sql_query(jvm_decisions_sql()))
    else:
        inputs = t_env.to_data_stream(t_env.sql_query(decision_inputs_sql()))
        decisions = (inputs.key_by(lambda row: row.tenant_id, key_type=Types.STRING())
                     .process(RiskScorer(config.models, config.label_horizon_s * 1000), output_type=OUTPUT_TYPE)
                     .uid(f"{JOB_NAME}.risk-scorer").name("risk scorer (River models + pattern hits)"))
        t_env.create_temporary_view("decisions", t_env.from_data_stream(decisions))
    columns = ", ".join(f"CAST(TO_TIMESTAMP_LTZ({name}, 3) AS TIMESTAMP(3))" if kind.startswith("TIMESTAMP")
                        else f"CAST({name} AS {kind})" for name, kind in _DECISION_TYPES.items())
    decided = f"SELECT {{key}}, {columns} FROM decisions WHERE output = '{{output}}'"
    statement_set.add_insert_sql("INSERT INTO fraud_alerts " + decided.format(
        key="tenant_id || ':' || entity_id", output="alert"))
    statement_set.add_insert_sql("INSERT INTO fraud_scores " + decided.format(
        key="tenant_id || ':' || event_id", output="score"))
    features = ", ".join(f"CAST({name} AS {kind})" for name, kind in _FEATURE_TYPES.items())
    statement_set.add_insert_sql("INSERT INTO features_online " + "\nUNION ALL\n".join(
        f"SELECT tenant_id || ':{entity}:' || entity_id, tenant_id, entity_type, entity_id, event_id, "
        f"CAST(event_time AS TIMESTAMP(3)), {features} FROM features_{entity}"
        for entity in fraud_features.ENTITY_COLUMNS))


def add_fast_outputs(t_env, config: FraudConfig, statement_set) -> None:
    """The low-latency path: fraud_decisions (ADR 0005)."""
    from udfs.fraud_scorer_operator import fast_decision_udf

    if config.scorer == "river":
        t_env.create_temporary_function("fast_decision", fast_decision_udf(config.models))
    t_env.create_temporary_view("fast_decided", t_env.sql_query(fast_decisions_sql(config.scorer)))
    statement_set.add_insert_sql("INSERT INTO fraud_decisions SELECT " + ", ".join(_FAST_COLUMNS)
                                 + " FROM fast_decided WHERE error IS NULL")


def dlq_columns_sql(view: str) -> str:
    """A fraud_dlq row from a view in input_rejections' column order."""
    return (f"SELECT record_key, reason, detail, tenant_id, event_id, source_topic, source_partition, "
            f"source_offset, source_timestamp, payload, byte_length(payload), '{JOB_NAME}' FROM {view}")


def scorer_errors_sql() -> str:
    """Batches the risk scorer could not decide (udfs/fraud_scorer_operator.error_rows)."""
    return (f"SELECT CAST(tenant_id || ':' || event_id AS BYTES), 'internal_error', JSON_VALUE(evidence, '$.error'), "
            f"tenant_id, event_id, 'risk-scorer', CAST(NULL AS INT), CAST(NULL AS BIGINT), "
            f"TO_TIMESTAMP_LTZ(decided_at, 3), CAST(evidence AS BYTES), byte_length(CAST(evidence AS BYTES)), "
            f"'{JOB_NAME}' FROM decisions WHERE output = 'error'")


def fast_path_errors_sql(job_name: str) -> str:
    """Payments the low-latency scorer could not decide (the exact path still decides them)."""
    return (f"SELECT CAST(record_key AS BYTES), 'internal_error', error, tenant_id, event_id, 'fast-path', "
            f"CAST(NULL AS INT), CAST(NULL AS BIGINT), CAST(appended_at AS TIMESTAMP_LTZ(3)), CAST(features AS BYTES), "
            f"byte_length(CAST(features AS BYTES)), '{job_name}' FROM fast_decided WHERE error IS NOT NULL")


def command(names: dict, *extra: str) -> list[str]:
    """`python -m jobs.fraud_detection` on the topics of topics.create_fraud_topics (tests, benches)."""
    return [sys.executable, "-m", "jobs.fraud_detection", "--clean-topic", names["clean"],
            "--rules-topic", names["rules"], "--alerts-topic", names["alerts"], "--scores-topic", names["scores"],
            "--features-topic", names["features"], "--chargebacks-topic", names["chargebacks"],
            "--decisions-topic", names["decisions"], "--dlq-topic", names["dlq"], "--group-id", names["prefix"],
            "--transactional-id-prefix", names["prefix"], *extra]


def main(argv: list[str] | None = None) -> None:
    config = FraudConfig.from_args(argv)
    t_env = stream_table_environment(config.flink, config.job_name,
                              {"table.exec.state.ttl": config.history_ttl,
                               # Flush network buffers between operators after 5 ms, not Flink's
                               # 100 ms: each hop of the low-latency path waited up to that.
                               "execution.buffer-timeout.interval": f"{config.buffer_timeout_ms} ms",
                               "pipeline.auto-watermark-interval": f"{config.watermark_interval_ms} ms",
                               "pipeline.object-reuse": str(config.object_reuse).lower(),
                               **uid_settings(config.job_name)})
    create_kafka_tables(t_env, config)
    execute(t_env, build_pipeline(t_env, config), config.job_name, config.bounded)


if __name__ == "__main__":
    main(sys.argv[1:])
