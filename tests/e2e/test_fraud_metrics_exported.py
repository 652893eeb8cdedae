"""The fraud job's metrics that Python scalar functions could not export (thread mode never
reports their metric groups) reach Prometheus from the Java functions in its SQL: the job runs on
the local standalone cluster, a few payments take the fast path, one payment makes the fast
path's scorer fail, two rules are refused, and the TaskManager's Prometheus reporter page
(VIGIL_METRICS_PORTS) must show exactly those counts under the names the rules read
(ops/README.md): vigil_decision_latency_ms_bucket{path="fast"}, vigil_rules_refused{reason},
vigil_internal_errors{function="fast_decision"}."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from confluent_kafka import Producer

from jobs import fraud_config
from tests.fraud_checks import ev, fraud_topics, set_rules, write_clean
from udfs.decision_metrics import LATENCY_LABELS
from udfs.fraud_models import ModelConfig, SnapshotStore
from vigil import flink_cluster, fraud_rules
from vigil.paths import PROJECT_ROOT

PAYMENTS = 5
PREFIX = "flink_taskmanager_job_task_operator_"
LATENCY = PREFIX + "path_le_ms_vigil_decision_latency_ms_bucket"
REFUSED = PREFIX + "reason_vigil_rules_refused"
ERRORS = PREFIX + "function_vigil_internal_errors"
_SAMPLE = re.compile(r"^(\w+)\{(.*)\}\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(page: str) -> list[tuple[str, dict, float]]:
    """(name, labels, value) of each sample with labels on a Prometheus text page.

    >>> parse('# TYPE m gauge\\nm{job_id="j",path="fast",} 3.0\\n')
    [('m', {'job_id': 'j', 'path': 'fast'}, 3.0)]
    """
    samples = []
    for line in page.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples.append((match[1], dict(_LABEL.findall(match[2])), float(match[3])))
    return samples


def scrape(job_id: str) -> list[tuple[str, dict, float]]:
    """The job's samples from every reporter in the cluster's port range (JobManager and TaskManager)."""
    low, _, high = flink_cluster.ClusterSettings().metrics_ports.partition("-")
    samples = []
    for port in range(int(low), int(high or low) + 1):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                samples += parse(response.read().decode())
        except OSError:
            continue  # no reporter on this port
    return [s for s in samples if s[1].get("job_id") == job_id]


def totals(samples, name: str, key: str) -> dict[str, float]:
    """{value of label `key`: sum over subtasks and operators} of metric `name`."""
    found: dict[str, float] = {}
    for sample_name, labels, value in samples:
        if sample_name == name:
            found[labels[key]] = found.get(labels[key], 0.0) + value
    return found


def fast_buckets(samples) -> dict[str, float]:
    return totals([s for s in samples if s[1].get("path") == "fast"], LATENCY, "le_ms")


def test_fast_path_latency_refused_rules_and_internal_errors_reach_the_taskmanager_reporter(
        flink, kafka, schema_registry, tmp_path):
    names = fraud_topics(kafka)
    set_rules(kafka, names["rules"], fraud_rules.DEFAULT_KEY, {}, 0)
    key = json.dumps({"tenant_id": "t1"}).encode()
    producer = Producer({"bootstrap.servers": kafka, "acks": "all"})
    producer.produce(names["rules"], key=key, value=json.dumps(  # a count as a string: invalid_rule
        fraud_rules.rule_message("t1", {"velocity_1m": "15"}, 0)).encode())
    producer.produce(names["rules"], key=key, value=b'{"velocity_1m": "lots"')  # json_parse_error
    assert producer.flush(30) == 0
    # A snapshot that is no model: the fast path's scorer raises on tenant t-bug's payment (an
    # internal error, dead-lettered), as a bug in it would.
    models = tmp_path / "models"
    SnapshotStore(models).save(ModelConfig().anomaly, "t-bug", 0, None)
    args = fraud_config.command(names, "--model-snapshot-dir", str(models), "--checkpoint-interval-ms", "1000")[3:]
    job_id = flink_cluster.submit_python_job(PROJECT_ROOT / "jobs" / "fraud_detection.py", args)
    try:
        now = int(time.time() * 1000)
        write_clean(kafka, schema_registry, names["clean"],
                    [ev("payment_attempt", now + i, user=f"u{i}", card=f"c{i}", amount="12.50") for i in range(PAYMENTS)]
                    + [ev("payment_attempt", now + PAYMENTS, tenant="t-bug", user="u-bug", card="c-bug", amount="9.00"),
                       ev("page_view", now + PAYMENTS + 1, user="u0")])  # not a payment: no decision

        def counted(samples) -> bool:
            return (fast_buckets(samples).get("inf", 0) >= PAYMENTS
                    and sum(totals(samples, REFUSED, "reason").values()) >= 2
                    and totals(samples, ERRORS, "function").get("fast_decision", 0) >= 1)

        deadline = time.monotonic() + 150
        samples = scrape(job_id)
        while not counted(samples) and time.monotonic() < deadline:
            time.sleep(2)
            samples = scrape(job_id)
        time.sleep(3)  # anything counted twice would show by now
        samples = scrape(job_id)
    finally:
        flink_cluster.cancel(job_id)
    buckets = fast_buckets(samples)
    print(f"\nfast path latency buckets: {buckets}")
    assert set(buckets) == set(LATENCY_LABELS), buckets  # every bucket exported, zeros included
    assert buckets["inf"] == PAYMENTS  # each decision once; the failed one is not a decision
    counts = [buckets[label] for label in LATENCY_LABELS]
    assert counts == sorted(counts), counts  # cumulative
    assert totals(samples, REFUSED, "reason") == {"invalid_rule": 1, "json_parse_error": 1}
    errors = totals(samples, ERRORS, "function")
    assert errors.get("fast_decision") == 1 and "check_rule" not in errors, errors
