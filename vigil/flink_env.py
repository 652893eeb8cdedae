"""One place that builds Flink table environments for Vigil jobs.

It wires in what every job needs: the connector jars from the cache (pipeline.jars), the Python
interpreter that has pyflink and Vigil installed (for the Python workers), checkpointing for
exactly-once, the state backend, and the Python execution mode. Jobs never repeat this.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass

from vigil import jars
from vigil.paths import PROJECT_ROOT


def python_executable() -> str:
    """The interpreter that has pyflink and Vigil installed: the jobs' Python workers run it, and
    the local cluster's TaskManagers start it at start-up (vigil.flink_cluster)."""
    return os.environ.get("VIGIL_PYTHON", sys.executable)


@dataclass(frozen=True)
class FlinkSettings:
    """Runtime settings shared by all jobs; each job's config embeds one."""

    parallelism: int = 1
    max_parallelism: int = 128           # fixed: it bounds rescaling and is part of savepoints
    checkpoint_interval_ms: int = 2000
    # Durable checkpoint storage; without it a MiniCluster keeps checkpoints in JobManager memory
    # (5 MB cap: the de-duplication state outgrows it within minutes).
    checkpoint_dir: str | None = os.environ.get("VIGIL_CHECKPOINT_DIR")
    state_backend: str = "rocksdb"       # dedup state outgrows the heap at production volume
    # "thread" runs Python inside the TaskManager JVM (pemja): ~7x the ingest throughput of
    # "process" here (docs/benchmarks.md). Its GIL is shared by the slots of one TaskManager, so
    # scale out with TaskManagers of one slot each.
    python_mode: str = "thread"
    bundle_size: int = 1000
    bundle_time_ms: int = 20
    max_restarts: int | None = None      # None: keep restarting (streaming); bounded runs fail fast
    # Any other Flink option, KEY=VALUE (--flink-conf), applied last: tuning without a code change.
    flink_conf: tuple[str, ...] = ()

    @staticmethod
    def add_arguments(parser) -> None:
        """The runtime flags every job takes."""
        d = FlinkSettings()
        parser.add_argument("--parallelism", type=int, default=d.parallelism)
        parser.add_argument("--checkpoint-interval-ms", type=int, default=d.checkpoint_interval_ms)
        parser.add_argument("--checkpoint-dir", default=d.checkpoint_dir)
        parser.add_argument("--state-backend", choices=["rocksdb", "hashmap"], default=d.state_backend)
        parser.add_argument("--python-mode", choices=["process", "thread"], default=d.python_mode)
        parser.add_argument("--max-restarts", type=int, default=None,
                            help="restarts before the job fails (default: for ever, 3 in bounded runs; 0: none)")
        parser.add_argument("--flink-conf", action="append", default=[], metavar="KEY=VALUE",
                            help="any Flink option, e.g. execution.checkpointing.file-merging.enabled=true (repeatable)")

    @staticmethod
    def from_parsed(args, bounded: bool) -> "FlinkSettings":
        """Settings from add_arguments' flags; bounded runs fail fast instead of restarting forever."""
        return FlinkSettings(parallelism=args.parallelism, checkpoint_interval_ms=args.checkpoint_interval_ms,
                             checkpoint_dir=args.checkpoint_dir, state_backend=args.state_backend,
                             python_mode=args.python_mode, flink_conf=tuple(args.flink_conf),
                             max_restarts=args.max_restarts if args.max_restarts is not None else (3 if bounded else None))

    def as_config(self) -> dict[str, str]:
        python = python_executable()
        conf = {
            "pipeline.jars": ";".join(p.as_uri() for p in jars.flink_connector_jars()),
            "python.executable": python,
            "python.client.executable": python,
            # Vigil's packages must be importable in the Python workers wherever they run, and in
            # thread mode the embedded interpreter needs the venv's site-packages (pemja lives there).
            "python.pythonpath": os.pathsep.join([str(PROJECT_ROOT), sysconfig.get_paths()["purelib"]]),
            "python.execution-mode": self.python_mode,
            "python.fn-execution.bundle.size": str(self.bundle_size),
            "python.fn-execution.bundle.time": str(self.bundle_time_ms),
            "parallelism.default": str(self.parallelism),
            "pipeline.max-parallelism": str(self.max_parallelism),
            "execution.checkpointing.interval": f"{self.checkpoint_interval_ms} ms",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.min-pause": f"{max(100, self.checkpoint_interval_ms // 4)} ms",
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "state.backend.type": self.state_backend,
            "state.backend.incremental": "true",
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1 s",
            "restart-strategy.exponential-delay.max-backoff": "30 s",
            # No source idleness: while a job catches up on a backlog, Kafka partitions are read
            # unevenly, and an "idle" partition would let the others' watermark run ahead and
            # mark its events late. A silent partition stalls the watermark instead (docs/adr/0002).
            "table.exec.source.idle-timeout": "0 ms",
        }
        if self.max_restarts == 0:
            conf["restart-strategy.type"] = "disable"  # the first failure fails the job (tests prove none happens)
        elif self.max_restarts is not None:
            conf["restart-strategy.exponential-delay.attempts-before-reset-backoff"] = str(self.max_restarts)
        # The cluster's own store (VIGIL_FLINK_STATE: the tests' or a drill's cluster), not always
        # the user's: a job's setting wins over the cluster's, and a drill restores from its store.
        from vigil import flink_cluster
        conf["execution.checkpointing.dir"] = self.checkpoint_dir or flink_cluster.checkpoint_uri()
        return conf

    def overrides(self) -> dict[str, str]:
        """--flink-conf KEY=VALUE options, which win over every other setting."""
        options = {}
        for option in self.flink_conf:
            key, sep, value = option.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--flink-conf {option!r}: expected KEY=VALUE")
            options[key.strip()] = value.strip()
        return options


def _job_config(settings: FlinkSettings, job_name: str, extra: dict[str, str] | None) -> dict[str, str]:
    # UTC everywhere: TIMESTAMP columns written to Avro (timestamp-millis) mean UTC, whatever the
    # machine's zone; Flink's Avro schema derivation has no TIMESTAMP_LTZ.
    defaults = {"table.local-time-zone": "UTC", "pipeline.name": job_name}
    return {**settings.as_config(), **defaults, **(extra or {}), **settings.overrides()}


def table_environment(settings: FlinkSettings, job_name: str, extra: dict[str, str] | None = None):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in _job_config(settings, job_name, extra).items():
        t_env.get_config().set(key, value)
    return t_env


def stream_table_environment(settings: FlinkSettings, job_name: str, extra: dict[str, str] | None = None):
    """A table environment over a DataStream environment, for jobs that mix SQL with keyed Python
    operators (state and event-time timers); the same settings as table_environment."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    values = _job_config(settings, job_name, extra)
    configuration = Configuration()
    for key, value in values.items():
        configuration.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(configuration)
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    for key, value in values.items():
        t_env.get_config().set(key, value)
    return t_env


def uid_settings(job_name: str) -> dict[str, str]:
    """Explicit operator uids for savepoints: stable while the SQL and the Flink version are
    unchanged (savepoints/README.md lists them and what changes them)."""
    return {"table.exec.uid.generation": "ALWAYS", "table.exec.uid.format": f"{job_name}.<id>_<transformation>"}


def plan_once(t_env, query_view: str, name: str, rowtime: str) -> None:
    """Register `name` as `query_view` planned once, for every later part of the job to read.

    Flink plans a DataStream conversion (`to_data_stream`) and the final statement set each on
    its own, with a copy of every view they read: a Kafka source read and decoded per part, an
    aggregate computed per part. Passing the view through a DataStream makes its operators exist
    once in the job; both parts read that stream. `rowtime` stays the time attribute, carrying the
    watermarks of the operators before it (SOURCE_WATERMARK). The stream carries Flink's internal
    rows (RowData), so nothing is converted on the way (an external Row costs a conversion of
    every field, twice).
    """
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Schema, Table

    jvm = get_gateway().jvm
    j_table = t_env.from_path(query_view)._j_table
    internal = j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(
        jvm.java.lang.Class.forName("org.apache.flink.table.data.RowData", True,
                                    jvm.Thread.currentThread().getContextClassLoader()))
    j_stream = t_env._j_tenv.toDataStream(j_table, internal)
    schema = Schema.new_builder().watermark(rowtime, "SOURCE_WATERMARK()").build()
    view = Table(t_env._j_tenv.fromDataStream(j_stream, schema._j_schema), t_env)
    t_env.create_temporary_view(name, view)


def execute(t_env, statement_set, job_name: str, bounded: bool) -> None:
    """Submit the job; wait for it where leaving would end it or the caller wants the end."""
    result = statement_set.execute()
    print(f"{job_name} submitted: job id {result.get_job_client().get_job_id()}", flush=True)
    # A local MiniCluster lives in this process: leaving would end the job. `flink run --detached`
    # (execution.attached false) hands the job to the cluster and returns.
    if bounded or t_env.get_config().get("execution.attached", "true") == "true":
        result.wait()
