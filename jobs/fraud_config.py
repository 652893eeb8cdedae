"""The fraud job's configuration (jobs/fraud_detection.py): its flags, topics, models, Flink
settings and job names; and `command`, its command line on a set of topics (tests, benchmarks)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, replace

from udfs.fraud_models import MODEL_VERSIONS, ModelConfig
from vigil import topics
from vigil.flink_env import FlinkSettings
from vigil.instants import parse_instant
from vigil.kafka_broker import BrokerSettings
from vigil.paths import state_dir
from vigil.registry.service import registry_url

JOB_NAME = "vigil-fraud"
FAST_JOB_NAME = "vigil-fraud-fast"   # --paths fast
PATHS = ("both", "exact", "fast")
FAST_STATE_TTL = "25 h"              # the fast job's state TTL (FraudConfig.state_ttl)
SKIPPABLE_OUTPUTS = ("fraud_scores", "features_online")   # --skip-output: sinks nothing else depends on


def default_model_dir() -> str:
    return os.environ.get("VIGIL_MODEL_DIR", str(state_dir() / "models"))


@dataclass(frozen=True)
class FraudConfig:
    bootstrap: str = os.environ.get("VIGIL_BOOTSTRAP", BrokerSettings().bootstrap)
    schema_registry_url: str = registry_url()
    clean_topic: str = topics.CLEAN
    rules_topic: str = topics.RULES
    alerts_topic: str = topics.ALERTS
    incidents_topic: str = topics.INCIDENTS
    # Alerts of one tenant sharing a user, card or device within this much event time of an
    # incident's first alert join it (udfs/incidents.py, docs/adr/0009).
    incident_window_s: int = 3600
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
    # A recorded range (vigil backtest): events.clean and labels.chargebacks read from the first
    # record the broker timestamped at or after start_time_ms (instead of the group's offsets) and
    # up to the last one before stop_time_ms (a bounded run; the rules are read to their end).
    # events.clean's timestamps are its append times (LogAppendTime), chargebacks' their label
    # times: where events were appended long after their event time (a backfill), the labels of
    # the range start earlier, at labels_start_time_ms (default start_time_ms).
    start_time_ms: int | None = None
    stop_time_ms: int | None = None
    labels_start_time_ms: int | None = None
    # Outputs not written (their topics then need not exist), e.g. by a backtest, which compares
    # alerts and incidents only: without features_online the planner drops the card, device and
    # merchant features, which nothing else reads. The patterns, models and alerts are unchanged.
    skip_outputs: tuple[str, ...] = ()
    out_of_orderness_s: int = 5
    # Processing-time TTL (table.exec.state.ttl) of the windows' and joins' state; the users'
    # history and the entities' hours go by event time instead (process table functions, ADR 0007).
    history_ttl: str = "30 d"
    transaction_timeout_ms: int = 900_000
    label_horizon_s: int = 7 * 24 * 3600  # payment vectors kept for their chargeback label
    # How long a quiet labels topic holds back the watermark. Replays that must score identically
    # (tests, benchmarks) give the labels source time to start: 30 s.
    labels_idle_timeout: str = "5 s"
    # How long a quiet rules topic holds back the watermark (None: 1 s, or 30 s in a bounded run).
    # Unbounded, a rule published later than the events it names applies from its arrival; a
    # bounded run (tests, backtests) reads every rule before the events pass the rules join, and
    # the finished rules source then holds nothing back. With 1 s, a rules fetch slower than that
    # (a loaded machine) let events join no rules at all.
    rules_idle_timeout: str | None = None
    models: ModelConfig = field(default_factory=lambda: ModelConfig(snapshot_dir=default_model_dir()))
    flink: FlinkSettings = field(default_factory=FlinkSettings)

    @property
    def rules_source_idle_timeout(self) -> str:
        """rules_idle_timeout, or its default: 30 s in a bounded run, 1 s otherwise."""
        return self.rules_idle_timeout or ("30 s" if self.bounded else "1 s")

    @staticmethod
    def from_args(argv: list[str] | None = None) -> "FraudConfig":
        p = argparse.ArgumentParser(prog="fraud_detection", description="Fraud detection job: events.clean -> patterns, features, River models -> decisions.")
        d = FraudConfig()
        p.add_argument("--bootstrap", default=d.bootstrap)
        p.add_argument("--schema-registry-url", default=d.schema_registry_url)
        p.add_argument("--clean-topic", default=d.clean_topic)
        p.add_argument("--rules-topic", default=d.rules_topic)
        p.add_argument("--alerts-topic", default=d.alerts_topic)
        p.add_argument("--incidents-topic", default=d.incidents_topic)
        p.add_argument("--incident-window-s", type=int, default=d.incident_window_s,
                       help="how long after an incident's first alert others can join it")
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
        p.add_argument("--start-time", type=_instant, metavar="WHEN",
                       help="read events and labels from the first record timestamped at or after WHEN "
                            "(epoch ms or ISO 8601, UTC) instead of the consumer group's offsets")
        p.add_argument("--stop-time", type=_instant, metavar="WHEN",
                       help="stop before the first event or label timestamped at or after WHEN (a bounded run)")
        p.add_argument("--labels-start-time", type=_instant, metavar="WHEN",
                       help="read chargeback labels from the first labelled at or after WHEN (default: --start-time)")
        p.add_argument("--skip-output", action="append", default=[], choices=SKIPPABLE_OUTPUTS,
                       help="do not write this output (repeatable; vigil backtest skips both)")
        p.add_argument("--out-of-orderness", type=int, default=d.out_of_orderness_s, metavar="SECONDS")
        p.add_argument("--history-ttl", default=d.history_ttl, help="state TTL, e.g. '30 d'")
        p.add_argument("--label-horizon-s", type=int, default=d.label_horizon_s)
        p.add_argument("--labels-idle-timeout", default=d.labels_idle_timeout)
        p.add_argument("--rules-idle-timeout", default=d.rules_idle_timeout,
                       help="how long a quiet rules topic holds back the watermark (default 1 s; 30 s in bounded runs)")
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
        if a.start_time is not None and a.stop_time is not None and a.stop_time <= a.start_time:
            p.error(f"--stop-time ({a.stop_time}) must be after --start-time ({a.start_time})")
        bounded = a.bounded or a.stop_time is not None
        config = FraudConfig(
            bootstrap=a.bootstrap, schema_registry_url=a.schema_registry_url, clean_topic=a.clean_topic,
            rules_topic=a.rules_topic, alerts_topic=a.alerts_topic, incidents_topic=a.incidents_topic,
            incident_window_s=a.incident_window_s, scores_topic=a.scores_topic,
            features_topic=a.features_topic, chargebacks_topic=a.chargebacks_topic,
            decisions_topic=a.decisions_topic, dlq_topic=a.dlq_topic, fast_path=not a.no_fast_path, paths=a.paths,
            scorer=a.scorer,
            buffer_timeout_ms=a.buffer_timeout_ms, watermark_interval_ms=a.watermark_interval_ms,
            object_reuse=a.object_reuse, group_id=a.group_id,
            transactional_id_prefix=a.transactional_id_prefix, bounded=bounded,
            start_time_ms=a.start_time, stop_time_ms=a.stop_time, labels_start_time_ms=a.labels_start_time,
            skip_outputs=tuple(dict.fromkeys(a.skip_output)),
            out_of_orderness_s=a.out_of_orderness, history_ttl=a.history_ttl, label_horizon_s=a.label_horizon_s,
            labels_idle_timeout=a.labels_idle_timeout,
            rules_idle_timeout=a.rules_idle_timeout,
            models=ModelConfig(anomaly=a.anomaly_model, supervised=a.supervised_model, shadow=a.shadow_model,
                               alert_threshold=a.alert_threshold, snapshot_dir=a.model_snapshot_dir,
                               snapshot_every=a.snapshot_every),
            flink=FlinkSettings.from_parsed(a, bounded=bounded))
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
    def state_ttl(self) -> str:
        """table.exec.state.ttl. The fast job's only state is the users' features in processing
        time, which need an hour and the previous event of the last day (HourFeatures.RETAIN_MS):
        a day and an hour of processing time bounds it. The exact job's windows and joins use
        --history-ttl."""
        return FAST_STATE_TTL if self.paths == "fast" else self.history_ttl

    @property
    def job_name(self) -> str:
        return FAST_JOB_NAME if self.paths == "fast" else JOB_NAME


def _instant(text: str) -> int:
    try:
        return parse_instant(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def command(names: dict, *extra: str) -> list[str]:
    """`python -m jobs.fraud_detection` on the topics of topics.create_fraud_topics (tests, benches)."""
    return [sys.executable, "-m", "jobs.fraud_detection", "--clean-topic", names["clean"],
            "--rules-topic", names["rules"], "--alerts-topic", names["alerts"], "--incidents-topic", names["incidents"],
            "--scores-topic", names["scores"],
            "--features-topic", names["features"], "--chargebacks-topic", names["chargebacks"],
            "--decisions-topic", names["decisions"], "--dlq-topic", names["dlq"], "--group-id", names["prefix"],
            "--transactional-id-prefix", names["prefix"], *extra]
