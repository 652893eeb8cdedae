"""Live alerting drill (issue 14): the ingest job runs on the local cluster while a producer sends
clean events for two tenants; then one tenant starts sending bad records (payments with an
invalid currency code) as a third of its traffic. The data-quality alert
(`VigilTenantDataQuality`) must fire for that tenant, and only that one, in Prometheus and reach
Alertmanager (both APIs show it) within 2 minutes of the first bad record. Then the ingest job is
cancelled: `VigilFlinkJobNotRunning{job_name="vigil_ingest"}` must reach Alertmanager.

Prometheus scrapes the cluster's reporter ports (VIGIL_METRICS_PORTS). The ops stack is the
state folder's own (`vigil ops up`): reused if it runs, stopped at the end only if this test
started it. Prints each time it measures. If another cluster on the same reporter ports runs a
vigil-ingest job too (a user's `make demo`), the job-down part is skipped with a message: that
alert is per job name. Marked `drill` (make drills):

    .venv/bin/python -m pytest tests/e2e/test_ops_alerts.py -m drill -s -q
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from confluent_kafka import Producer

from tests.ingest_checks import ingest_args
from tests.scenarios import event, payment, wire
from vigil import flink_cluster, ops_stack, procs
from vigil.generator.wire import EventWriter
from vigil.paths import PROJECT_ROOT
from vigil.registry.service import registry_url

BAD_TENANT, GOOD_TENANT = "tq01", "tq02"
DATA_QUALITY_BOUND_S = 120        # issue 14: firing in Alertmanager < 2 min after bad input starts
JOB_DOWN_BOUND_S = 180            # `for: 1m`, a scrape, an evaluation and Prometheus's send


@pytest.fixture
def ops():
    settings = ops_stack.OpsSettings()
    was_running = all(ops_stack.is_running(component, settings) for component in ops_stack.COMPONENTS)
    ops_stack.up(settings, log=print)
    yield settings
    if not was_running:
        ops_stack.down(log=print)


class Traffic:
    """Events for both tenants at `rate` per second each, in a thread; bad records for BAD_TENANT
    (half as many as its good ones) once `bad` is set."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 20.0):
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.writer = EventWriter.registered(registry_url(), topic, with_v2=False)
        self.topic, self.rate = topic, rate
        self.bad = threading.Event()
        self.stop = threading.Event()
        self.first_bad_at: float | None = None
        self.sent = {"good": 0, "bad": 0}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _send(self, record: dict, kind: str) -> None:
        key, value = wire(record, self.writer)
        self.producer.produce(self.topic, key=key, value=value, timestamp=record["event_time"])
        self.sent[kind] += 1

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            now_ms = int(time.time() * 1000)
            for tenant in (BAD_TENANT, GOOD_TENANT):
                self._send(event("page_view", id=uuid.uuid4().hex, tenant=tenant, user=f"u{i % 40}", at_ms=now_ms), "good")
            if self.bad.is_set() and i % 2 == 0:
                if self.first_bad_at is None:
                    self.first_bad_at = time.monotonic()
                self._send(payment(currency="EURO", id=uuid.uuid4().hex, tenant=BAD_TENANT, user=f"u{i % 40}",
                                   at_ms=now_ms), "bad")
            self.producer.poll(0)
            i += 1
            time.sleep(1 / self.rate)
        self.producer.flush(10)


def _prometheus_alerts(settings, name: str) -> list[dict]:
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/alerts", timeout=5) as response:
        alerts = json.loads(response.read())["data"]["alerts"]
    return [alert for alert in alerts if alert["labels"]["alertname"] == name]


def _alertmanager_alerts(settings, name: str) -> list[dict]:
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
    with urllib.request.urlopen(f"{settings.alertmanager_url}/api/v2/alerts?{query}", timeout=5) as response:
        return json.loads(response.read())


def _first_time(check, timeout_s: float, what: str) -> float:
    """Monotonic time at which `check()` first held (polled every second)."""
    procs.wait_until(check, timeout_s, what, interval=1.0)
    return time.monotonic()


@pytest.mark.drill
def test_bad_input_for_one_tenant_fires_the_data_quality_alert_and_a_cancelled_job_fires_job_down(
        flink, kafka, ingest_topics, ops):
    job_id = flink_cluster.submit_python_job(PROJECT_ROOT / "jobs" / "ingest.py",
                                             ingest_args(ingest_topics, "--checkpoint-interval-ms", "1000"))
    traffic = Traffic(kafka, ingest_topics["raw"])
    cancelled = False
    try:
        flink_cluster.wait_for_checkpoints(job_id, 0, timeout_s=180)
        traffic.thread.start()
        # Prometheus sees both tenants' record counters before anything goes wrong
        procs.wait_until(lambda: _tenants_counted(ops) >= {BAD_TENANT, GOOD_TENANT}, 120,
                         "the ingest job's per-tenant counters in Prometheus", interval=2.0)
        time.sleep(30)    # a clean 2-minute window is not needed: the ratio starts at 0
        assert not _prometheus_alerts(ops, "VigilTenantDataQuality")

        traffic.bad.set()
        procs.wait_until(lambda: traffic.first_bad_at is not None, 10, "the first bad record")
        start = traffic.first_bad_at

        def firing_in_prometheus() -> bool:
            return any(a["state"] == "firing" and a["labels"].get("tenant") == BAD_TENANT
                       for a in _prometheus_alerts(ops, "VigilTenantDataQuality"))

        def in_alertmanager() -> bool:
            return any(a["labels"].get("tenant") == BAD_TENANT for a in _alertmanager_alerts(ops, "VigilTenantDataQuality"))

        prometheus_at = _first_time(firing_in_prometheus, DATA_QUALITY_BOUND_S + 60, "the data-quality alert in Prometheus")
        alertmanager_at = _first_time(in_alertmanager, DATA_QUALITY_BOUND_S + 60, "the data-quality alert in Alertmanager")
        print(f"data-quality alert for {BAD_TENANT}: firing in Prometheus {prometheus_at - start:.0f} s, "
              f"in Alertmanager {alertmanager_at - start:.0f} s after the first bad record "
              f"({traffic.sent['bad']} bad, {traffic.sent['good']} good sent so far)")
        assert alertmanager_at - start < DATA_QUALITY_BOUND_S
        fired = [a for a in _alertmanager_alerts(ops, "VigilTenantDataQuality") if a["labels"].get("tenant") == BAD_TENANT]
        assert fired[0]["labels"]["tenant_class"] == "named"
        assert fired[0]["annotations"]["runbook_url"] == "docs/runbooks/alerts/VigilTenantDataQuality.md"
        assert not any(a["labels"].get("tenant") == GOOD_TENANT
                       for a in _alertmanager_alerts(ops, "VigilTenantDataQuality")), "the clean tenant alerted"
        try:    # the data-quality receiver (group_wait 10 s); printed, not asserted
            procs.wait_until(lambda: any(a["labels"].get("tenant") == BAD_TENANT
                                         for note in ops_stack.notifications("data-quality")
                                         for a in note["notification"]["alerts"]), 60, "the data-quality webhook")
            print(f"data-quality receiver notified {time.monotonic() - start:.0f} s after the first bad record")
        except TimeoutError:
            print("data-quality receiver: no notification within 60 s more")
        traffic.stop.set()
        traffic.thread.join(30)

        def job_down_in_alertmanager() -> bool:
            return any(a["labels"].get("job_name") == "vigil_ingest"
                       for a in _alertmanager_alerts(ops, "VigilFlinkJobNotRunning"))

        others = _job_ids(ops, "vigil_ingest") - {job_id}
        if others:    # another cluster on the reporter ports (a user's `make demo`) runs vigil-ingest too
            flink_cluster.cancel(job_id)
            cancelled = True
            pytest.skip(f"another vigil-ingest job is scraped ({', '.join(sorted(others))}): the job-down alert "
                        "is per job name and cannot fire while it runs; stop it to run this part")
        # fired before the job ran (absent): resolved since, or the check below would prove nothing
        procs.wait_until(lambda: not job_down_in_alertmanager(), 120, "VigilFlinkJobNotRunning for vigil_ingest to resolve")
        cancelled_at = time.monotonic()
        flink_cluster.cancel(job_id)
        cancelled = True
        down_at = _first_time(job_down_in_alertmanager, JOB_DOWN_BOUND_S + 60, "VigilFlinkJobNotRunning in Alertmanager")
        print(f"VigilFlinkJobNotRunning{{job_name=vigil_ingest}} in Alertmanager {down_at - cancelled_at:.0f} s "
              "after the cancel")
        assert down_at - cancelled_at < JOB_DOWN_BOUND_S
        assert any(a["labels"].get("job_name") == "vigil_ingest" and a["state"] == "firing"
                   for a in _prometheus_alerts(ops, "VigilFlinkJobNotRunning"))
    finally:
        traffic.stop.set()
        if traffic.thread.is_alive():
            traffic.thread.join(30)
        if not cancelled:
            flink_cluster.cancel(job_id)


def _tenants_counted(settings) -> set[str]:
    query = urllib.parse.urlencode({"query": "vigil:ingest_records:rate2m > 0"})
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/query?{query}", timeout=5) as response:
        return {sample["metric"].get("tenant") for sample in json.loads(response.read())["data"]["result"]}


def _job_ids(settings, job_name: str) -> set[str]:
    query = urllib.parse.urlencode({"query": f'flink_jobmanager_job_uptime{{job_name="{job_name}"}}'})
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/query?{query}", timeout=5) as response:
        return {sample["metric"].get("job_id") for sample in json.loads(response.read())["data"]["result"]}
