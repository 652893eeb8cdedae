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
       users' activity, entities' hours and velocity counts dropped by event time (process table
       functions: an hour, a day or 30 days after an entity's newest event, ADR 0007); the rest
       also expires after --history-ttl (table.exec.state.ttl, processing time); models, items
       awaiting the watermark and payment vectors awaiting labels in the risk scorer (ADR 0005).
Late   event time with --out-of-orderness bounded disorder; see ADR 0004 for what it costs.
Code   this file wires the job; its SQL is in sql/ (ddl/fraud_tables.sql, queries/fraud_*.sql) and
       jobs/fraud_sql.py (what is built from Python values), its flags in jobs/fraud_config.py.
Run    locally:  vigil run fraud_detection [--bounded]
       cluster:  vigil submit fraud_detection [flags]
       a recorded range: --start-time/--stop-time (record time of events.clean; what
       `vigil backtest` runs twice, with the rules in force and with candidate ones)
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # `flink run -py jobs/fraud_detection.py` runs this file as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.fraud_config import JOB_NAME, FraudConfig  # noqa: E402
from jobs.fraud_sql import (DECISION_COLUMNS, DEFAULT_RULE_SHARDS, ENTITIES, FEATURE_COLUMNS, Fragment,  # noqa: E402
                            decided_sql, decision_inputs_sql, dlq_columns_sql, effective_rules_sql,
                            entity_events_view_sql, fast_decisions_output_sql, fast_decisions_sql,
                            fast_path_errors_sql, features_online_sql, haversine_sql, hour_rows_of_users,
                            hour_rows_over, hour_rows_process, incidents_sql, jvm_decisions_sql, missing_columns_sql,
                            pattern_views, range_options_sql, scorer_errors_sql, usd_rate_sql)
from udfs import fraud_features  # noqa: E402
from vigil import fraud_rules, sql_files  # noqa: E402
from vigil.flink_env import execute, plan_once, stream_table_environment, uid_settings  # noqa: E402


def create_kafka_tables(t_env, config: FraudConfig) -> None:
    # Bounded runs (tests, quality benchmark) stop every source at the offsets found at start; a
    # recorded range (--start-time/--stop-time, vigil backtest) bounds events and labels by record
    # time and reads the rules to their end.
    bounded = Fragment("'scan.bounded.mode' = 'latest-offset'," if config.bounded else "")
    events_range = range_options_sql(config.bounded, config.start_time_ms, config.stop_time_ms)
    labels_start = config.start_time_ms if config.labels_start_time_ms is None else config.labels_start_time_ms
    labels_range = range_options_sql(config.bounded, labels_start, config.stop_time_ms)
    for statement in sql_files.render(
            "ddl/fraud_tables.sql", bootstrap=config.bootstrap, clean_topic=config.clean_topic,
            rules_topic=config.rules_topic, alerts_topic=config.alerts_topic, scores_topic=config.scores_topic,
            incidents_topic=config.incidents_topic,
            features_topic=config.features_topic, chargebacks_topic=config.chargebacks_topic,
            decisions_topic=config.decisions_topic, dlq_topic=config.dlq_topic, group_id=config.group_id,
            schema_registry_url=config.schema_registry_url, out_of_orderness_s=config.out_of_orderness_s,
            transactional_id_prefix=config.transactional_id_prefix,
            transaction_timeout_ms=config.transaction_timeout_ms,
            bounded_option=bounded, events_range_options=events_range, labels_range_options=labels_range,
            labels_idle_timeout=config.labels_idle_timeout,
            rules_idle_timeout=config.rules_source_idle_timeout,
            rule_columns=Fragment(fraud_rules.sql_columns()), decision_columns=DECISION_COLUMNS,
            feature_columns=FEATURE_COLUMNS):
        t_env.execute_sql(statement)
    t_env.execute_sql(sql_files.dead_letter_table("fraud_dlq", config.dlq_topic, config.bootstrap,
                                                  config.transactional_id_prefix, config.transaction_timeout_ms))


# Each source's verdicts view and its time attribute (sql/queries/fraud_verdicts.sql).
_VERDICTS = {"event_verdicts": "row_time", "rule_verdicts": "effective_from", "label_verdicts": "label_ts"}


def create_input_views(t_env, config: FraudConfig) -> None:
    """clean_events, fraud_rules (versioned), chargeback_labels and input_rejections over the
    raw sources (sql/queries/fraud_verdicts.sql, fraud_inputs.sql); each source is read, decoded
    and checked once for the whole job (plan_once)."""
    from udfs.fraud_input_udfs import check_rule_udf, rule_fields_sql

    t_env.create_temporary_function("check_rule", check_rule_udf())
    t_env.create_java_temporary_system_function("byte_length", "vigil.flink.functions.ByteLength")
    # Metrics of Python scalar functions are not reported in thread mode: counted in Java (docs/adr/0005).
    t_env.create_java_temporary_system_function("count_rule_refusal", "vigil.flink.functions.CountRuleRefusal")
    t_env.create_java_temporary_system_function("count_late_event", "vigil.flink.functions.CountLateEvent")
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


def create_event_views(t_env, exact: bool = True) -> None:
    """keyed_events_query (before any per-user state: the low-latency path reads it), then
    user_activity and keyed_events, computed once for the whole job (sql/queries/fraud_events.sql)."""
    t_env.create_java_temporary_system_function("hour_features", "vigil.flink.functions.HourFeatures")
    t_env.create_java_temporary_system_function("hour_features_process", "vigil.flink.functions.HourFeaturesProcess")
    t_env.create_java_temporary_system_function("user_activity_process", "vigil.flink.functions.UserActivityProcess")
    for statement in sql_files.render("queries/fraud_events.sql", usd_rate=usd_rate_sql(),
                                      default_rule_shards=DEFAULT_RULE_SHARDS):
        sql_files.execute(t_env, statement)
    if not exact:
        return
    plan_once(t_env, "user_activity_query", "user_activity", rowtime="event_time")
    columns = [name for name in t_env.from_path("user_activity").get_schema().get_field_names() if name != "a"]
    t_env.execute_sql(f"CREATE TEMPORARY VIEW keyed_events AS SELECT {', '.join(columns)} FROM user_activity")


def create_pattern_views(t_env, config: FraudConfig) -> None:
    """The SQL detections (patterns, rules, velocity) and the union `pattern_hits`; the events
    they test are joined to the rules once (ruled_events)."""
    t_env.create_java_temporary_system_function("payment_velocity_process",
                                                "vigil.flink.functions.PaymentVelocityProcess")
    t_env.create_java_temporary_system_function("amount_history", "vigil.flink.functions.AmountHistory")
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
            sql_files.execute(t_env, statement)
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
    other entities' from hour_features_process over <entity>_events."""
    haversine = haversine_sql("prev_latitude", "prev_longitude", "latitude", "longitude")
    # On arrival: before user_activity, whose rows wait for the watermark.
    t_env.execute_sql("CREATE TEMPORARY VIEW arriving_events AS SELECT *, PROCTIME() AS proc_time "
                      "FROM keyed_events_query")
    variants = []  # (view, entity type, hour rows, columns passed through)
    if exact:
        variants.append(("user", "user", hour_rows_of_users(), ""))
        for entity, column in fraud_features.ENTITY_COLUMNS.items():
            if entity != "user":
                t_env.execute_sql(entity_events_view_sql(f"{entity}_events", column))
                variants.append((entity, entity, hour_rows_process(f"{entity}_events"), ""))
    # is_late: the exact path scores the late payments on these features (decision_inputs_sql)
    variants.append(("user_now", "user", hour_rows_over("user_id", "proc_time", "arriving_events", ", is_late"),
                     ", is_late"))
    for view_name, entity, hour_rows, passed in variants:
        for statement in sql_files.render(
                "queries/fraud_features.sql", view_name=view_name, entity_type=entity,
                hour_rows=hour_rows, haversine_km=haversine, passed_columns=Fragment(passed)):
            sql_files.execute(t_env, statement)


def build_pipeline(t_env, config: FraudConfig) -> dict:
    """The job's outputs as Tables by sink (sql/ddl/fraud_tables.sql), for the paths it runs
    (config.paths); main inserts them."""
    create_input_views(t_env, config)
    create_event_views(t_env, exact=config.runs_exact)
    create_feature_views(t_env, exact=config.runs_exact)
    outputs, dead_letters = {}, []
    if config.runs_exact:
        create_pattern_views(t_env, config)
        create_decisions_view(t_env, config)
        outputs["fraud_alerts"] = t_env.sql_query(decided_sql("alert", key="tenant_id || ':' || entity_id"))
        outputs["fraud_scores"] = t_env.sql_query(decided_sql("score", key="tenant_id || ':' || event_id"))
        if config.scorer == "river":  # the JVM baseline has no Python scorer, hence no incidents
            outputs["fraud_incidents"] = t_env.sql_query(incidents_sql())
        outputs["features_online"] = t_env.sql_query(features_online_sql())
        dead_letters += [dlq_columns_sql("input_rejections", config.job_name), scorer_errors_sql(config.job_name)]
    if config.runs_fast:
        create_fast_decisions_view(t_env, config)
        outputs["fraud_decisions"] = t_env.sql_query(fast_decisions_output_sql())
        dead_letters.append(fast_path_errors_sql(config.job_name))
    outputs["fraud_dlq"] = t_env.sql_query("\nUNION ALL\n".join(dead_letters))
    # --skip-output: a sink not inserted takes the operators only it reads out of the plan
    return {sink: table for sink, table in outputs.items() if sink not in config.skip_outputs}


def create_decisions_view(t_env, config: FraudConfig) -> None:
    """`decisions`: the risk scorer's rows (alerts, scores, errors) for payments, pattern hits and
    labels; in SQL with fixed weights for the JVM baseline (--scorer jvm)."""
    from pyflink.common import Types

    from udfs.fraud_scorer_operator import OUTPUT_TYPE, RiskScorer

    if config.scorer == "jvm":
        t_env.create_temporary_view("decisions", t_env.sql_query(jvm_decisions_sql()))
        return
    inputs = t_env.to_data_stream(t_env.sql_query(decision_inputs_sql()))
    decisions = (inputs.key_by(lambda row: row.tenant_id, key_type=Types.STRING())
                 .process(RiskScorer(config.models, config.label_horizon_s * 1000, config.incident_window_s * 1000),
                          output_type=OUTPUT_TYPE)
                 .uid(f"{JOB_NAME}.risk-scorer").name("risk scorer (River models + pattern hits)"))
    t_env.create_temporary_view("decisions", t_env.from_data_stream(decisions))


def create_fast_decisions_view(t_env, config: FraudConfig) -> None:
    """`fast_decided`: the low-latency path's decision of each payment on arrival (ADR 0005)."""
    from udfs.fraud_scorer_operator import fast_decision_udf

    if config.scorer == "river":
        t_env.create_temporary_function("fast_decision", fast_decision_udf(config.models))
    # Its latency and internal errors are counted in Java where its rows are written (docs/adr/0005).
    t_env.create_java_temporary_system_function("count_decision_latency",
                                                "vigil.flink.functions.CountDecisionLatency")
    t_env.create_java_temporary_system_function("count_internal_error", "vigil.flink.functions.CountInternalError")
    t_env.create_temporary_view("fast_decided", t_env.sql_query(fast_decisions_sql(config.scorer)))


def main(argv: list[str] | None = None) -> None:
    config = FraudConfig.from_args(argv)
    t_env = stream_table_environment(config.flink, config.job_name,
                                     {"table.exec.state.ttl": config.state_ttl,
                               # Flush network buffers between operators after 5 ms, not Flink's
                               # 100 ms: each hop of the low-latency path waited up to that.
                               "execution.buffer-timeout.interval": f"{config.buffer_timeout_ms} ms",
                               "pipeline.auto-watermark-interval": f"{config.watermark_interval_ms} ms",
                               "pipeline.object-reuse": str(config.object_reuse).lower(),
                               **uid_settings(config.job_name)})
    create_kafka_tables(t_env, config)
    statement_set = t_env.create_statement_set()
    for sink, table in build_pipeline(t_env, config).items():
        statement_set.add_insert(sink, table)
    execute(t_env, statement_set, config.job_name, config.bounded)


if __name__ == "__main__":
    main(sys.argv[1:])
