"""`vigil`: the command line for the local platform, the generator and the jobs.

  vigil infra up|down|status [--wipe]     Kafka broker (KRaft) on 127.0.0.1:9092, topics,
                                          schema registry on 127.0.0.1:8085, PostgreSQL
                                          (analytics serving) on 127.0.0.1:5433
  vigil serving keys|retention|migrate|psql  the analytics database (see vigil/serving/cli.py)
  vigil api [--workers N] [--background|--stop|--status]  the analytics HTTP API on 127.0.0.1:8090
  vigil ops up|down|status|alerts         Prometheus, Alertmanager, probes on 127.0.0.1 (vigil/ops_stack.py)
  vigil schema list|register|check|config the schema registry (see vigil/schema_cli.py)
  vigil rules defaults|set|show           fraud rules per tenant (see vigil/rules_cli.py)
  vigil backtest --candidate-rules FILE   replay a recorded range with candidate rules or models
                                          beside the current ones, compare (see vigil/backtest.py)
  vigil cluster up|down|status            Flink standalone session cluster, REST 127.0.0.1:8081,
                                          and its SQL Gateway, REST 127.0.0.1:8083
  vigil sql [-f FILE.sql]                 Flink's SQL client with Vigil's catalog (see vigil/sql_cli.py)
  vigil generate [--rate --events|--duration --seed --bad-fraction --v2-fraction ...]
  vigil run ingest [job flags]            run a job locally (MiniCluster, this process);
                                          jobs: ingest, fraud_detection, analytics
  vigil submit ingest [job flags]         submit a job to the local cluster (flink run -py)
  vigil jobs [--json]                     jobs on the cluster, last checkpoint and savepoint
  vigil savepoint JOB | stop JOB --savepoint   take a savepoint (or stop with one), catalogued
  vigil savepoints [--keep N]             the savepoint catalog (commit, plan fingerprint, size)
  vigil restore JOB --from PATH|--latest [job flags]  flink run -s (see vigil/savepoint_ops.py)
  vigil upgrade check JOB --from PATH|--latest [job flags]  savepoint state a restore would drop
                                          (see vigil/upgrade_check.py)
  vigil demo [--duration --rate]          the README's first command, end to end
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from vigil import audit_log, backtest, cli_args, dr_drill, flink_cluster, kafka_broker, ops_stack, rules_cli, savepoint_ops, schema_cli, sql_cli, topics
from vigil.generator.mixes import MIXES
from vigil.paths import PROJECT_ROOT, state_dir
from vigil.registry import service as registry_service
from vigil.serving import cli as serving_cli
from vigil.serving import postgres
from vigil import upgrade_check

JOBS = {"ingest": "jobs/ingest.py", "fraud_detection": "jobs/fraud_detection.py", "analytics": "jobs/analytics.py"}


def _bootstrap() -> str:
    return kafka_broker.BrokerSettings().bootstrap


def cmd_infra(args) -> int:
    if args.action == "up":
        kafka_broker.start()
        topics.ensure_topics(_bootstrap())
        registry_service.start(_bootstrap())
        postgres.ensure_running()
    elif args.action == "down":
        from vigil.api import server as api_server  # the API reads PostgreSQL: it goes first
        api_server.stop_background()
        postgres.stop()
        registry_service.stop()
        kafka_broker.stop()
        if args.wipe:
            kafka_broker.wipe()
            print("kafka: data wiped (schemas included: they live in the _schemas topic)")
            postgres.wipe()
            print("postgres: data and passwords wiped (API keys included)")
    else:
        print(kafka_broker.status())
        print(registry_service.status())
        print(postgres.status())
    return 0


def cmd_cluster(args) -> int:
    from vigil import sql_gateway  # the SQL Gateway lives and dies with the cluster (BI tools, notebooks)

    if args.action == "up":
        flink_cluster.start(taskmanagers=args.taskmanagers)
        sql_gateway.start()
    elif args.action == "down":
        sql_gateway.stop()
        flink_cluster.stop()
    else:
        print(flink_cluster.status())
        print(sql_gateway.status())
    return 0


def cmd_generate(args) -> int:
    from vigil.generator.producer import ChargebackSettings, produce
    from vigil.generator.stream import EventStream, StreamSettings
    from vigil.generator.wire import EventWriter

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
    settings = StreamSettings(seed=seed, start_ms=start_ms, rate=args.rate,
                              fraud_fraction=args.fraud_fraction, bad_fraction=args.bad_fraction,
                              mix=args.mix, tenants=args.tenants, merchants=args.merchants,
                              v2_fraction=args.v2_fraction)
    if args.events is None and args.duration is None:
        args.events = 10_000
    labels = Path(args.labels_file) if args.labels_file else state_dir() / f"labels-{seed}.jsonl"
    print(f"generate: seed {seed}, {args.rate:,.0f} events/s, "
          f"{f'{args.events:,} events' if args.events else f'{args.duration:.0f}s'}, "
          f"bad fraction {args.bad_fraction}, fraud fraction {args.fraud_fraction}, "
          f"v2 fraction {args.v2_fraction} -> {args.topic}", file=sys.stderr)
    writer = EventWriter.registered(args.schema_registry_url, args.topic, with_v2=args.v2_fraction > 0)
    print(f"generate: schema ids from {args.schema_registry_url}: v1 {writer.v1_id}"
          + (f", v2 {writer.v2_id}" if writer.v2_id else ""), file=sys.stderr)
    chargebacks_topic = None if args.chargebacks_topic.lower() == "none" else args.chargebacks_topic
    chargebacks = ChargebackSettings() if args.maturity_s is None else ChargebackSettings(maturity_s=args.maturity_s)
    stats = produce(EventStream(settings, writer).records(), args.bootstrap, args.rate, events=args.events,
                    duration_s=args.duration, pace=not args.no_pace, labels_file=labels,
                    manifest_file=Path(args.manifest) if args.manifest else None, topic=args.topic,
                    chargebacks_topic=chargebacks_topic, chargebacks=chargebacks)
    print(f"generate: sent {stats.sent:,} events in {stats.elapsed_s:.1f}s ({stats.rate:,.0f}/s); "
          f"{stats.fraud_events:,} in fraud scenarios (labels: {labels}), {stats.bad_records:,} injected "
          f"bad/late/duplicate; {stats.chargeback_labels:,} chargeback labels"
          f"{f' -> {chargebacks_topic}' if chargebacks_topic else ' (off)'}; {stats.failed} failed",
          file=sys.stderr)
    if stats.failed:
        print(f"generate: first delivery error: {stats.first_error}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args, extra: list[str]) -> int:
    if args.job not in JOBS:
        raise SystemExit(f"unknown job {args.job}; jobs: {', '.join(JOBS)}")
    # A process of its own, as `flink run` would start it: vigil/ never imports the jobs.
    return subprocess.call([sys.executable, "-m", f"jobs.{args.job}", *extra], cwd=PROJECT_ROOT)


def cmd_submit(args, extra: list[str]) -> int:
    if args.job not in JOBS:
        raise SystemExit(f"unknown job {args.job}; jobs: {', '.join(JOBS)}")
    script = PROJECT_ROOT / JOBS[args.job]
    # The compiled plan is kept: `vigil restore` with the same flags submits it without recompiling.
    job_id = flink_cluster.submit_python_job(script, extra, keep_plan=flink_cluster.kept_plan(script, extra))
    print(f"submitted {args.job}: job id {job_id}; web UI {flink_cluster.ClusterSettings().rest_url}"
          f"/#/job/running/{job_id}/overview")
    audit_log.record("job.submit", args.job, after={"job_id": job_id, "flags": extra})
    return 0


def cmd_demo(args) -> int:
    from vigil import demo
    return demo.run(duration_s=args.duration, rate=args.rate, bad_fraction=args.bad_fraction, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("infra", help="local Kafka broker, topics, schema registry and PostgreSQL")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--wipe", action="store_true", help="with down: delete the broker's and PostgreSQL's data")
    p.set_defaults(func=cmd_infra)

    p = sub.add_parser("cluster", help="local Flink standalone session cluster")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--taskmanagers", type=cli_args.bounded(int, 1, 16), default=1)
    p.set_defaults(func=cmd_cluster)

    schema_cli.add_parser(sub, registry_service.registry_url())
    rules_cli.add_parser(sub, _bootstrap())
    audit_log.add_parser(sub, _bootstrap())
    backtest.add_parser(sub, _bootstrap(), registry_service.registry_url())
    serving_cli.add_parsers(sub)
    sql_cli.add_parser(sub)
    upgrade_check.add_parser(sub)
    ops_stack.add_parser(sub)
    savepoint_ops.add_parser(sub)
    dr_drill.add_parser(sub)

    p = sub.add_parser("generate", help="produce realistic traffic into events.raw")
    p.add_argument("--bootstrap", default=_bootstrap())
    p.add_argument("--topic", default=topics.RAW)
    p.add_argument("--rate", type=cli_args.bounded(float, 0.001), default=1000.0, help="events per second (default 1000)")
    p.add_argument("--events", type=cli_args.POSITIVE_INT, help="stop after this many events (default 10,000)")
    p.add_argument("--duration", type=cli_args.bounded(float, 0.001), help="stop after this many seconds")
    p.add_argument("--seed", type=int, help="same seed and --start-ms, same events (default: random)")
    p.add_argument("--start-ms", type=int, help="event time of the first event (default: now)")
    p.add_argument("--bad-fraction", type=cli_args.FRACTION, default=0.0, help="share of bad/late/duplicate records")
    p.add_argument("--fraud-fraction", type=cli_args.FRACTION, default=0.02, help="share of sessions that are fraud")
    p.add_argument("--v2-fraction", type=cli_args.FRACTION, default=0.0,
                   help="share of events written with event schema v2 (registered first)")
    p.add_argument("--schema-registry-url", default=registry_service.registry_url())
    p.add_argument("--mix", choices=sorted(MIXES), default="standard",
                   help="traffic mix: world size, currencies, near-miss behaviours (vigil/generator/mixes.py)")
    p.add_argument("--tenants", type=cli_args.POSITIVE_INT, help="default: the mix's (standard: 50)")
    p.add_argument("--merchants", type=cli_args.POSITIVE_INT, help="default: the mix's (standard: 10,000)")
    p.add_argument("--labels-file", help="ground-truth JSON lines (default: .vigil/labels-<seed>.jsonl)")
    p.add_argument("--manifest", help="write every record's partition/offset/expected verdict here")
    p.add_argument("--chargebacks-topic", default=topics.CHARGEBACKS,
                   help="delayed fraud/legitimate label of every payment attempt (default %(default)s; none: off)")
    p.add_argument("--maturity-s", type=cli_args.NON_NEGATIVE,
                   help="event-time seconds after which a legitimate payment's label arrives (default 3600)")
    p.add_argument("--no-pace", action="store_true", help="send as fast as possible (benchmarks)")
    p.set_defaults(func=cmd_generate)

    for name, func, text in (("run", cmd_run, "run a job locally in this process"),
                             ("submit", cmd_submit, "submit a job to the local Flink cluster")):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("job", help=", ".join(JOBS))
        p.set_defaults(func=func, passthrough=True)

    p = sub.add_parser("demo", help="set up, run ingest, fraud and analytics on a minute of traffic, summarise")
    p.add_argument("--duration", type=cli_args.bounded(float, 1, 86_400), default=60.0)
    p.add_argument("--rate", type=cli_args.bounded(float, 1, 1_000_000), default=1000.0)
    p.add_argument("--bad-fraction", type=cli_args.FRACTION, default=0.02)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_demo)

    args, extra = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):
        return args.func(args, extra)
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
