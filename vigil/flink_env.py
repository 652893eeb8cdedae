"""One place that builds Flink table environments for Vigil jobs.

It wires in what every job needs: the connector jars from the cache (pipeline.jars), the Python
interpreter that has pyflink and Vigil installed (for the Python workers), checkpointing for
exactly-once, the state backend, and the Python execution mode. Jobs never repeat this.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from vigil import jars
from vigil.paths import PROJECT_ROOT


@dataclass(frozen=True)
class FlinkSettings:
    """Runtime settings shared by all jobs; each job's config embeds one."""

    parallelism: int = 1
    max_parallelism: int = 128           # fixed: it bounds rescaling and is part of savepoints
    checkpoint_interval_ms: int = 2000
    checkpoint_dir: str | None = None    # None: the cluster's (or MiniCluster's) default
    state_backend: str = "rocksdb"       # dedup state outgrows the heap at production volume
    python_mode: str = "process"         # or "thread" (measured in bench/ingest.py)
    bundle_size: int = 1000
    bundle_time_ms: int = 20

    def as_config(self) -> dict[str, str]:
        python = os.environ.get("VIGIL_PYTHON", sys.executable)
        conf = {
            "pipeline.jars": ";".join(p.as_uri() for p in jars.flink_connector_jars()),
            "python.executable": python,
            "python.client.executable": python,
            # Vigil's packages must be importable in the Python workers wherever they run.
            "python.pythonpath": str(PROJECT_ROOT),
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
        if self.checkpoint_dir:
            conf["execution.checkpointing.dir"] = self.checkpoint_dir
        return conf


def table_environment(settings: FlinkSettings, job_name: str, extra: dict[str, str] | None = None):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for key, value in {**settings.as_config(), "pipeline.name": job_name, **(extra or {})}.items():
        conf.set(key, value)
    return t_env
