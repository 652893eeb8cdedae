"""An outage is not bad input: when the schema registry cannot be reached, the fraud job's
dead-letter formats fail the job (so it restarts from its checkpoint and retries) instead of
sending valid events to fraud.dlq. Here the job is pointed at a registry port nobody listens on,
with restarts disabled: it must fail, say why, and leave the dead-letter topic empty."""

from __future__ import annotations

import socket
import subprocess
import time

from tests.fraud_checks import ev, fraud_job_command, fraud_topics, write_clean
from vigil import kafka_io
from vigil.paths import PROJECT_ROOT


def test_valid_events_are_not_dead_lettered_when_the_registry_is_down(kafka, schema_registry):
    names = fraud_topics(kafka)
    t0 = int(time.time() * 1000) - 3600_000
    write_clean(kafka, schema_registry, names["clean"],
                [ev("payment_attempt", t0 + i * 1000, user=f"u{i}", card=f"c{i}", amount="12.00") for i in range(20)])
    closed_port = _unused_port()
    result = subprocess.run(fraud_job_command(names, "--bounded", "--max-restarts", "0", "--schema-registry-url",
                                              f"http://127.0.0.1:{closed_port}"),
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, "the job finished although it could not read a single event"
    assert "schema registry unavailable, not a bad record" in output, output[-3000:]
    assert list(kafka_io.read(kafka, names["dlq"], idle_timeout_s=2)) == []


def _unused_port() -> int:
    with socket.socket() as probe:  # bound, then released: nothing listens there afterwards
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
