"""The SQL of the fraud job (jobs/fraud_detection.py) that is built from Python values: rule
parameters, currencies, feature and decision fields, and the expressions the SQL files under
sql/queries/ take as placeholders. Pure functions of their arguments: no Flink here."""

from __future__ import annotations

from udfs import fraud_features, fraud_scoring
from vigil import fraud_rules, sql_files
from vigil.event_model import UNITS_PER_USD

Fragment = sql_files.Fragment


# Copies of the "*" rules, each joined by the events of one shard: more than the job's parallelism,
# so no subtask sees all events (sql/queries/fraud_inputs.sql: default_rules).
DEFAULT_RULE_SHARDS = 32


ENTITIES = {"card": "card_fingerprint", "user": "user_id", "device": "device_id", "ip": "ip"}


def range_options_sql(bounded: bool, start_time_ms: int | None = None, stop_time_ms: int | None = None) -> Fragment:
    """The Kafka connector options saying where the events and labels sources start and stop
    (sql/ddl/fraud_tables.sql: events_range_options, labels_range_options): the consumer group's
    offsets and no end by default;
    record timestamps (epoch ms) with --start-time/--stop-time; the end offsets found at start with
    --bounded alone. Each option ends with a comma, as the DDL expects.

    >>> range_options_sql(False)
    "'scan.startup.mode' = 'group-offsets',"
    >>> range_options_sql(True)
    "'scan.startup.mode' = 'group-offsets', 'scan.bounded.mode' = 'latest-offset',"
    >>> range_options_sql(True, 1000, 2000)  # doctest: +NORMALIZE_WHITESPACE
    "'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '1000',
     'scan.bounded.mode' = 'timestamp', 'scan.bounded.timestamp-millis' = '2000',"
    """
    if start_time_ms is None:
        options = ["'scan.startup.mode' = 'group-offsets',"]
    else:
        options = ["'scan.startup.mode' = 'timestamp',", f"'scan.startup.timestamp-millis' = '{int(start_time_ms)}',"]
    if stop_time_ms is not None:
        options += ["'scan.bounded.mode' = 'timestamp',", f"'scan.bounded.timestamp-millis' = '{int(stop_time_ms)}',"]
    elif bounded:
        options.append("'scan.bounded.mode' = 'latest-offset',")
    return Fragment(" ".join(options))


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


def missing_columns_sql(*columns: str) -> Fragment:
    """SQL naming the columns among `columns` that are null, comma separated ('' if none is).

    >>> missing_columns_sql("a", "b")
    "CONCAT_WS(', ', IF(a IS NULL, 'a', CAST(NULL AS STRING)), IF(b IS NULL, 'b', CAST(NULL AS STRING)))"
    """
    return Fragment("CONCAT_WS(', ', " + ", ".join(
        f"IF({column} IS NULL, '{column}', CAST(NULL AS STRING))" for column in columns) + ")")


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


_HOUR_ROW_COLUMNS = "event_id, event_type, appended_at, amount_usd, latitude, longitude, device_id, card_fingerprint"


def hour_rows_over(column: str, time_column: str, source_view: str, passed: str = "") -> Fragment:
    """An entity's events (`column`) with `h`, hour_features in an unbounded OVER ordered by
    `time_column` (the low-latency path's arrival order); `passed`: more columns of `source_view`
    (", a, b")."""
    return Fragment(
        f"(SELECT tenant_id, {column} AS entity_id, CAST(event_time AS TIMESTAMP(3)) AS event_time, "
        f"{_HOUR_ROW_COLUMNS}{passed}, "
        "hour_features(event_time, event_type, amount_usd, user_id, device_id, card_fingerprint, ip, country, "
        f"latitude, longitude) OVER (PARTITION BY tenant_id, {column} ORDER BY {time_column} "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS h FROM {source_view} WHERE {column} IS NOT NULL)")


def entity_events_view_sql(view: str, column: str) -> str:
    """The events of one entity type (`column` not null, as entity_id) with the columns
    hour_features_process reads."""
    return (f"CREATE TEMPORARY VIEW {view} AS SELECT tenant_id, {column} AS entity_id, event_id, event_time, "
            "event_type, appended_at, amount_usd, user_id, device_id, card_fingerprint, ip, country, latitude, "
            f"longitude FROM keyed_events WHERE {column} IS NOT NULL")


def hour_rows_process(input_view: str) -> Fragment:
    """`input_view`'s events (one entity's, as entity_id) with `h`, from hour_features_process in
    event-time order."""
    return Fragment(
        f"(SELECT tenant_id, entity_id, CAST(rowtime AS TIMESTAMP(3)) AS event_time, {_HOUR_ROW_COLUMNS}, h "
        f"FROM hour_features_process(input => TABLE {input_view} PARTITION BY (tenant_id, entity_id), "
        f"on_time => DESCRIPTOR(event_time), uid => 'hour-features-{input_view}'))")


def hour_rows_of_users() -> Fragment:
    """The users' events with `h`: the hour fields of user_activity's `a`."""
    return Fragment(f"(SELECT tenant_id, user_id AS entity_id, CAST(event_time AS TIMESTAMP(3)) AS event_time, "
                    f"{_HOUR_ROW_COLUMNS}, a AS h FROM user_activity WHERE user_id IS NOT NULL)")


def features_json_sql(links: bool = False, late: bool = False) -> str:
    """The features as JSON; with `links`, also the event's device and card, which the risk scorer
    takes out again to link the payment's alert into incidents (udfs/fraud_scoring.py); with
    `late`, "late": true (a payment scored on its arrival-order features, reason code late_event)."""
    names = ("amount_usd",) + fraud_features.FEATURES + (("device_id", "card_fingerprint") if links else ())
    entries = [f"'{name}' VALUE {name}" for name in names] + (["'late' VALUE TRUE"] if late else [])
    return "JSON_OBJECT(" + ", ".join(entries) + ")"


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
               {features_json_sql(links=True)} AS detail,
               CAST(NULL AS BIGINT) AS rules_ms, CAST(NULL AS BOOLEAN) AS is_fraud, CAST(NULL AS BIGINT) AS label_ms
        FROM features_user WHERE event_type = 'payment_attempt'
        UNION ALL
        -- payments that arrived behind the watermark: on their arrival-order features, flagged
        SELECT 'payment', tenant_id, event_id, {ms("event_time")}, {ms("CAST(appended_at AS TIMESTAMP(3))")}, 'user',
               entity_id, CAST(NULL AS STRING), CAST(NULL AS DOUBLE), {features_json_sql(links=True, late=True)},
               CAST(NULL AS BIGINT), CAST(NULL AS BOOLEAN), CAST(NULL AS BIGINT)
        FROM features_user_now WHERE event_type = 'payment_attempt' AND is_late
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
    common = ("CAST(NULL AS DOUBLE) AS anomaly_score, CAST(NULL AS DOUBLE) AS supervised_score, "
              "CAST(NULL AS DOUBLE) AS shadow_score, 'jvm-fixed-weights' AS model_versions")
    return f"""
        SELECT 'score' AS output, SHA2(tenant_id || '|' || event_id, 256) AS alert_id, tenant_id,
               CAST(NULL AS STRING) AS fraud_pattern, 'user' AS entity_type, entity_id, event_id,
               {ms("event_time")} AS event_time, {_JVM_RISK} AS score, CAST(ARRAY['fixed_weights'] AS ARRAY<STRING>) AS reason_codes,
               CAST(NULL AS STRING) AS evidence, CAST(NULL AS BIGINT) AS rules_effective_from, {common},
               {now} - {ms("CAST(appended_at AS TIMESTAMP(3))")} AS detection_latency_ms, {now} AS decided_at
        FROM features_user WHERE event_type = 'payment_attempt'
        UNION ALL
        SELECT 'score', SHA2(tenant_id || '|' || event_id, 256), tenant_id, CAST(NULL AS STRING), 'user', entity_id,
               event_id, {ms("event_time")}, {_JVM_RISK}, CAST(ARRAY['fixed_weights', 'late_event'] AS ARRAY<STRING>),
               CAST(NULL AS STRING), CAST(NULL AS BIGINT), {common},
               {now} - {ms("CAST(appended_at AS TIMESTAMP(3))")}, {now}
        FROM features_user_now WHERE event_type = 'payment_attempt' AND is_late
        UNION ALL
        SELECT 'alert', SHA2(tenant_id || '|' || event_id, 256), tenant_id, fraud_pattern, entity_type, entity_id,
               event_id, {ms("event_time")}, score, ARRAY[fraud_pattern], evidence, {ms("rules_effective_from")},
               {common}, {now} - {ms("appended_at")}, {now}
        FROM pattern_hits"""


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


def dlq_columns_sql(view: str, job_name: str) -> str:
    """A fraud_dlq row from a view in input_rejections' column order."""
    return (f"SELECT record_key, reason, detail, tenant_id, event_id, source_topic, source_partition, "
            f"source_offset, source_timestamp, payload, byte_length(payload), '{job_name}' FROM {view}")


def scorer_errors_sql(job_name: str) -> str:
    """Batches the risk scorer could not decide (udfs/fraud_scorer_operator.error_rows)."""
    return (f"SELECT CAST(tenant_id || ':' || event_id AS BYTES), 'internal_error', JSON_VALUE(evidence, '$.error'), "
            f"tenant_id, event_id, 'risk-scorer', CAST(NULL AS INT), CAST(NULL AS BIGINT), "
            f"TO_TIMESTAMP_LTZ(decided_at, 3), CAST(evidence AS BYTES), byte_length(CAST(evidence AS BYTES)), "
            f"'{job_name}' FROM decisions WHERE output = 'error'")


def fast_path_errors_sql(job_name: str) -> str:
    """Payments the low-latency scorer could not decide (the exact path still decides them)."""
    # Counted here, where it is routed (count_internal_error, java/vigil-formats): the Python
    # scorer's own metric group is not reported in thread mode.
    return (f"SELECT CAST(record_key AS BYTES), count_internal_error('fast_decision'), error, tenant_id, event_id, "
            f"'fast-path', "
            f"CAST(NULL AS INT), CAST(NULL AS BIGINT), CAST(appended_at AS TIMESTAMP_LTZ(3)), CAST(features AS BYTES), "
            f"byte_length(CAST(features AS BYTES)), '{job_name}' FROM fast_decided WHERE error IS NOT NULL")

def decided_sql(output: str, key: str) -> str:
    """The risk scorer's `output` rows ('alert' or 'score') in the topics' columns, keyed by `key`."""
    columns = ", ".join(f"CAST(TO_TIMESTAMP_LTZ({name}, 3) AS TIMESTAMP(3))" if kind.startswith("TIMESTAMP")
                        else f"CAST({name} AS {kind})" for name, kind in _DECISION_TYPES.items())
    return f"SELECT {key}, {columns} FROM decisions WHERE output = '{output}'"


def incidents_sql() -> str:
    """The risk scorer's `incident` rows in fraud_incidents' columns (udfs/fraud_scoring.INCIDENT_FIELDS)."""
    def at(column: str) -> str:
        return f"CAST(TO_TIMESTAMP_LTZ({column}, 3) AS TIMESTAMP(3))"
    return (f"SELECT alert_id, tenant_id, status, severity, score, {at('first_seen')}, {at('event_time')}, "
            f"alert_count, reason_codes, entities, alert_ids, fraud_pattern, event_id, {at('decided_at')} "
            f"FROM decisions WHERE output = 'incident'")


def features_online_sql() -> str:
    """The features of every entity, as of each of its events, in features_online's columns."""
    features = ", ".join(f"CAST({name} AS {kind})" for name, kind in _FEATURE_TYPES.items())
    return "\nUNION ALL\n".join(
        f"SELECT tenant_id || ':{entity}:' || entity_id, tenant_id, entity_type, entity_id, event_id, "
        f"CAST(event_time AS TIMESTAMP(3)), {features} FROM features_{entity}"
        for entity in fraud_features.ENTITY_COLUMNS)


def fast_decisions_output_sql() -> str:
    """The low-latency decisions the scorer made (its failures go to the dead-letter topic), each
    counted once in vigil_decision_latency_ms_bucket{path="fast"} as it is written: by
    count_decision_latency (java/vigil-formats), since the Python scorer's metric group is not
    reported in thread mode."""
    columns = [f"count_decision_latency('fast', {name}) AS {name}" if name == "decision_latency_ms" else name
               for name in _FAST_COLUMNS]
    return "SELECT " + ", ".join(columns) + " FROM fast_decided WHERE error IS NULL"
