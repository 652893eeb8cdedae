"""Ingest job: events.raw -> validate -> de-duplicate -> events.clean (exactly-once) | events.dlq.

Input  events.raw, key `tenant_id:user_id`, value in Confluent wire format (Avro): the writer
       schema is fetched from the schema registry by the id in each record and resolved to the
       job's reader schema (vigil/schemas/event-v2.avsc), so v1 and v2 producers mix freely.
       Record timestamp = event_time. Example value (decoded):
       {"event_id": "e-42", "event_time": 2026-11-26T11:00:00Z, "tenant_id": "t007",
        "merchant_id": "m0042", "user_id": "u123", "event_type": "checkout", "amount": 59.90,
        "currency": "EUR", ...}
Output events.clean  accepted events, once each (Kafka transactions, read_committed), in Flink's
                    avro-confluent format: schema registered under events.clean-value.
       events.dlq    every rejected record: reason, detail, source position, original bytes.
State  per (tenant_id, event_id): a COUNT in the de-duplication OVER aggregation, kept for
       --dedup-ttl (default 1 h) of processing time, RocksDB by default.
Late   events behind the watermark (bounded out-of-orderness, --out-of-orderness) go to the DLQ
       as `late_event` with their bytes; nothing is dropped.
Run    locally:  vigil run ingest [--bounded]           (MiniCluster, in this process)
       cluster:  flink run -py jobs/ingest.py [flags]    (see README, `vigil cluster up`)
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

if __package__ in (None, ""):  # `flink run -py jobs/ingest.py` runs this file as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfs.ingest_udfs import validate_event_udf  # noqa: E402
from udfs.validation import ValidationRules  # noqa: E402
from vigil import sql_files, topics  # noqa: E402
from vigil.kafka_broker import BrokerSettings  # noqa: E402
from vigil.registry.service import registry_url  # noqa: E402
from vigil.flink_env import FlinkSettings, execute, table_environment, uid_settings  # noqa: E402

JOB_NAME = "vigil-ingest"


@dataclass(frozen=True)
class IngestConfig:
    bootstrap: str = os.environ.get("VIGIL_BOOTSTRAP", BrokerSettings().bootstrap)
    raw_topic: str = topics.RAW
    clean_topic: str = topics.CLEAN
    dlq_topic: str = topics.DLQ
    schema_registry_url: str = registry_url()
    reader_schema: str = "event-v2.avsc"  # under vigil/schemas/; what the job reads records as
    group_id: str = "vigil-ingest"
    transactional_id_prefix: str = "vigil-ingest"
    bounded: bool = False                 # stop at the end offsets found at start (demo, tests)
    # Explicit offsets "partition:0,offset:42;partition:1,offset:7" (Flink's format): where to
    # start on a first run (default: the group's committed offsets, else earliest) and where to
    # stop (implies bounded). A restored job always resumes from its checkpoint instead.
    start_offsets: str | None = None
    stop_offsets: str | None = None
    out_of_orderness_s: int = 5
    dedup_ttl: str = "1 h"
    transaction_timeout_ms: int = 900_000
    tenant_label_capacity: int = 200
    rules: ValidationRules = field(default_factory=ValidationRules)
    flink: FlinkSettings = field(default_factory=FlinkSettings)

    @staticmethod
    def from_args(argv: list[str] | None = None) -> "IngestConfig":
        p = argparse.ArgumentParser(prog="ingest", description=__doc__.split("\n")[0])
        d = IngestConfig()
        p.add_argument("--bootstrap", default=d.bootstrap, help="Kafka bootstrap servers")
        p.add_argument("--raw-topic", default=d.raw_topic)
        p.add_argument("--clean-topic", default=d.clean_topic)
        p.add_argument("--dlq-topic", default=d.dlq_topic)
        p.add_argument("--schema-registry-url", default=d.schema_registry_url,
                       help="Confluent-compatible registry (ours, Confluent's, Apicurio ccompat)")
        p.add_argument("--group-id", default=d.group_id, help="consumer group (offsets in checkpoints)")
        p.add_argument("--transactional-id-prefix", default=d.transactional_id_prefix,
                       help="stable per job: changing it orphans open transactions")
        p.add_argument("--bounded", action="store_true", help="stop at the offsets that exist at start")
        p.add_argument("--start-offsets", help="'partition:0,offset:42;partition:1,offset:7'")
        p.add_argument("--stop-offsets", help="same format; stop there (a bounded run)")
        p.add_argument("--out-of-orderness", type=int, default=d.out_of_orderness_s, metavar="SECONDS")
        p.add_argument("--dedup-ttl", default=d.dedup_ttl, help="de-duplication horizon, e.g. '1 h'")
        p.add_argument("--tenant-label-capacity", type=int, default=d.tenant_label_capacity,
                       help="tenants with their own metric series per subtask; the rest are _other")
        p.add_argument("--max-payload-bytes", type=int, default=d.rules.max_payload_bytes)
        FlinkSettings.add_arguments(p)
        a = p.parse_args(argv)
        return IngestConfig(
            bootstrap=a.bootstrap, raw_topic=a.raw_topic, clean_topic=a.clean_topic,
            dlq_topic=a.dlq_topic, schema_registry_url=a.schema_registry_url, group_id=a.group_id, transactional_id_prefix=a.transactional_id_prefix,
            bounded=a.bounded or a.stop_offsets is not None, start_offsets=a.start_offsets,
            stop_offsets=a.stop_offsets, out_of_orderness_s=a.out_of_orderness, dedup_ttl=a.dedup_ttl,
            tenant_label_capacity=a.tenant_label_capacity,
            rules=ValidationRules(max_payload_bytes=a.max_payload_bytes),
            flink=FlinkSettings.from_parsed(a, bounded=a.bounded or a.stop_offsets is not None))


def offsets_options(config: IngestConfig) -> str:
    """The Kafka source's startup/bounded options as SQL WITH entries."""
    options = {"scan.startup.mode": "group-offsets"}
    if config.start_offsets:
        options = {"scan.startup.mode": "specific-offsets", "scan.startup.specific-offsets": config.start_offsets}
    if config.stop_offsets:
        options.update({"scan.bounded.mode": "specific-offsets", "scan.bounded.specific-offsets": config.stop_offsets})
    elif config.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return sql_files.Fragment(",\n  ".join(f"'{k}' = '{v}'" for k, v in options.items()))


def create_kafka_tables(t_env, config: IngestConfig) -> None:
    for statement in sql_files.render(
            "ddl/ingest_tables.sql", bootstrap=config.bootstrap, schema_registry_url=config.schema_registry_url, raw_topic=config.raw_topic,
            clean_topic=config.clean_topic, dlq_topic=config.dlq_topic, group_id=config.group_id,
            transactional_id_prefix=config.transactional_id_prefix,
            transaction_timeout_ms=config.transaction_timeout_ms,
            out_of_orderness_s=config.out_of_orderness_s, offsets_options=offsets_options(config)):
        t_env.execute_sql(statement)
    t_env.execute_sql(sql_files.dead_letter_table("dlq_events", config.dlq_topic, config.bootstrap,
                                                  config.transactional_id_prefix, config.transaction_timeout_ms))


def build_pipeline(t_env, config: IngestConfig):
    """Register the UDFs and views over `raw_events`; return the statement set writing
    `clean_events` and `dlq_events` (tables the caller has created)."""
    t_env.create_temporary_system_function(
        "validate_event", validate_event_udf(config.rules, config.schema_registry_url, config.reader_schema))
    # Per-tenant counters in Java: metrics registered from Python table functions are not
    # reported in thread mode (java/vigil-formats TenantCounters).
    t_env.get_config().set("pipeline.global-job-parameters",
                           f"vigil.tenant-label-capacity:{config.tenant_label_capacity}")
    t_env.create_java_temporary_system_function("count_verdict", "vigil.flink.functions.CountVerdict")
    t_env.create_java_temporary_system_function("count_rejection", "vigil.flink.functions.CountRejection")
    statements = sql_files.render("queries/ingest_routing.sql", raw_topic=config.raw_topic,
                                  job_name=JOB_NAME)
    statement_set = t_env.create_statement_set()
    for statement in statements:
        if statement.lstrip().upper().startswith("INSERT"):
            statement_set.add_insert_sql(statement)
        else:
            t_env.execute_sql(statement)
    return statement_set


# Runtime settings of this job (docs/adr/0008-ingest-throughput.md has the measurements):
RUNTIME = {
    # Rows are handed between chained operators without a defensive copy: every operator of this
    # plan is Flink SQL's own or a Python scalar function, none keeps a reference to its input.
    "pipeline.object-reuse": "true",
    # Nearly every de-duplication lookup is for a key that is not there (a first copy): a bloom
    # filter answers it without reading the SST files of the whole horizon.
    "state.backend.rocksdb.use-bloom-filter": "true",
}


def main(argv: list[str] | None = None) -> None:
    config = IngestConfig.from_args(argv)
    t_env = table_environment(config.flink, JOB_NAME,
                              {"table.exec.state.ttl": config.dedup_ttl, **RUNTIME, **uid_settings(JOB_NAME)})
    create_kafka_tables(t_env, config)
    execute(t_env, build_pipeline(t_env, config), JOB_NAME, config.bounded)


if __name__ == "__main__":
    main(sys.argv[1:])
