"""`vigil ops up|down|status|alerts` with the real processes (Debian's prometheus,
prometheus-alertmanager and prometheus-blackbox-exporter, installed when missing), on ports and a
state folder of the test's own: every rule loaded, the watchdog delivered through Alertmanager to
the heartbeat receiver, alerts routed by severity and team to their receivers, `up` again reloads
without restarting, a port taken by someone else is refused before anything starts, and `down`
stops exactly what `up` started. Needs no Kafka and no Flink (their probes simply fail).

And the names the rules read are the names Flink's own Prometheus reporter (2.2.1, from the
apache-flink wheel) gives metrics registered as Flink and the jobs register them: a small Java
program puts them on real job, task and operator metric groups and prints the reporter's page
(one JVM for about two seconds, no cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

from vigil import ops_stack, procs
from vigil.paths import PROJECT_ROOT

PORT_VARIABLES = ("VIGIL_PROMETHEUS_PORT", "VIGIL_ALERTMANAGER_PORT", "VIGIL_BLACKBOX_PORT", "VIGIL_ALERT_WEBHOOK_PORT")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture
def own_stack(tmp_path, monkeypatch):
    """A state folder and ports of this test's own; whatever it started is stopped at the end."""
    monkeypatch.setenv("VIGIL_STATE", str(tmp_path / "state"))
    for variable, port in zip(PORT_VARIABLES, _free_ports(len(PORT_VARIABLES))):
        monkeypatch.setenv(variable, str(port))
    try:
        ops_stack.ensure_installed()
    except RuntimeError as error:
        pytest.fail(f"the ops stack needs Debian's Prometheus packages: {error}")
    yield ops_stack.OpsSettings()
    ops_stack.down(log=lambda *_: None)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _received(receiver: str, alertname: str) -> bool:
    return any(alert["labels"].get("alertname") == alertname
               for note in ops_stack.notifications(receiver) for alert in note["notification"]["alerts"])


REPORTER_NAMES_JAVA = r"""import java.util.*;
import org.apache.flink.api.common.JobID;
import org.apache.flink.metrics.*;
import org.apache.flink.metrics.prometheus.PrometheusReporterFactory;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.runtime.clusterframework.types.ResourceID;
import org.apache.flink.runtime.executiongraph.ExecutionAttemptID;
import org.apache.flink.runtime.metrics.NoOpMetricRegistry;
import org.apache.flink.runtime.metrics.filter.ReporterFilter;
import org.apache.flink.runtime.metrics.groups.*;

/** Registers metrics the way Flink and Vigil's jobs do, on groups like theirs, with Flink's own
 *  Prometheus reporter, and prints its exposition text (args: port). */
public class ReporterNames {
  static MetricReporter reporter;
  static ReporterScopedSettings<?> settings =
      new ReporterScopedSettings<>(0, '.', ReporterFilter.getNoOpFilter(), Collections.emptySet(), Collections.emptyMap());

  static void add(MetricGroup group, String name, Metric metric) {
    reporter.notifyOfAddedMetric(metric, name, new FrontMetricGroup<>(settings, (AbstractMetricGroup<?>) group));
  }

  public static void main(String[] args) throws Exception {
    MetricConfig config = new MetricConfig();
    config.setProperty("port", args[0]);
    reporter = new PrometheusReporterFactory().createMetricReporter(config);
    reporter.open(config);
    Gauge<Long> one = () -> 1L;
    JobManagerJobMetricGroup job = JobManagerMetricGroup
        .createJobManagerMetricGroup(NoOpMetricRegistry.INSTANCE, "localhost").addJob(new JobID(), "vigil-ingest");
    for (String name : new String[] {"uptime", "numRestarts", "numberOfCompletedCheckpoints",
                                     "numberOfFailedCheckpoints", "lastCheckpointDuration"}) {
      add(job, name, one);
    }
    TaskMetricGroup task = TaskManagerMetricGroup
        .createTaskManagerMetricGroup(NoOpMetricRegistry.INSTANCE, "localhost", ResourceID.generate())
        .addJob(new JobID(), "vigil-ingest").addTask(ExecutionAttemptID.randomId(), "Source: raw_events");
    add(task, "backPressuredTimeMsPerSecond", one);
    MetricGroup operator = task.getOrAddOperator("Source: raw_events");
    add(operator, "pendingRecords", one);
    for (String name : new String[] {"payments_scored", "alerts_decided", "labels_joined", "labels_unmatched"}) {
      add(operator, name, new SimpleCounter());
    }
    add(operator.addGroup("tenant", "acme-eu"), "vigil_ingest_records", new SimpleCounter());
    add(operator.addGroup("reason", "late_event").addGroup("tenant", "acme-eu"), "vigil_ingest_rejected", new SimpleCounter());
    add(operator.addGroup("function", "validate_event"), "vigil_internal_errors", new SimpleCounter());
    add(operator.addGroup("reason", "invalid_rule"), "vigil_rules_refused", new SimpleCounter());
    add(operator.addGroup("deserializer"), "vigil_undecodable_records", new SimpleCounter());
    // the fraud job's: the risk scorer's, and count_decision_latency's (java/vigil-formats) for path fast
    add(operator.addGroup("pattern", "card_testing"), "vigil_fraud_alerts", new SimpleCounter());
    add(operator.addGroup("path", "fast").addGroup("le_ms", "500"), "vigil_decision_latency_ms_bucket", new SimpleCounter());
    add(operator.addGroup("tenant", "acme-eu"), "vigil_fraud_late_events", new SimpleCounter());  // CountLateEvent
    try (java.io.InputStream in = new java.net.URL("http://127.0.0.1:" + args[0] + "/metrics").openStream()) {
      System.out.print(new String(in.readAllBytes()));
    }
    reporter.close();
  }
}
"""


def _rule_metric_names() -> set[str]:
    return {name for path in (PROJECT_ROOT / "ops/prometheus/rules").glob("*.yml")
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
            for name in re.findall(r"(?<![\w:])(flink_[A-Za-z0-9_]+)", rule["expr"])}


def test_flink_reporter_exports_exactly_the_names_and_labels_the_rules_read(tmp_path):
    from vigil import flink_cluster

    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "a JDK (javac) is needed: the project builds its Java parts with Maven"
    home = flink_cluster.flink_home()
    classpath = os.pathsep.join(str(jar) for jar in [*home.glob("lib/flink-dist-*.jar"),
                                                     *home.glob("plugins/metrics-prometheus/*.jar"),
                                                     *home.glob("lib/log4j-*.jar")])
    (tmp_path / "ReporterNames.java").write_text(REPORTER_NAMES_JAVA)
    compiled = subprocess.run([javac, "-cp", classpath, "-d", str(tmp_path), str(tmp_path / "ReporterNames.java")],
                              capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stderr
    ran = subprocess.run([java, "-cp", f"{classpath}{os.pathsep}{tmp_path}", "ReporterNames", str(_free_ports(1)[0])],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    samples = {}
    for line in ran.stdout.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} \S+", line)
        if match:
            samples[match.group(1)] = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
    assert set(samples) == _rule_metric_names()
    ingest = samples["flink_taskmanager_job_task_operator_reason_tenant_vigil_ingest_rejected"]
    assert (ingest["reason"], ingest["tenant"], ingest["job_name"]) == ("late_event", "acme_eu", "vigil_ingest")
    assert ingest["operator_name"] == "Source:_raw_events"
    assert samples["flink_jobmanager_job_uptime"]["job_name"] == "vigil_ingest"
    bucket = samples["flink_taskmanager_job_task_operator_path_le_ms_vigil_decision_latency_ms_bucket"]
    assert (bucket["path"], bucket["le_ms"]) == ("fast", "500")
    assert "# TYPE flink_taskmanager_job_task_operator_tenant_vigil_ingest_records gauge" in ran.stdout


def test_up_loads_every_rule_delivers_and_routes_alerts_reloads_and_down_stops_it_all(own_stack, capsys):
    settings = own_stack
    started = time.monotonic()
    ops_stack.up(settings, log=print)
    pids = {component.name: ops_stack.pid(component) for component in ops_stack.COMPONENTS}
    assert all(pids.values()), pids
    print(f"up in {time.monotonic() - started:.1f} s")

    # every alert and recording rule of ops/prometheus/rules is loaded
    groups = _get(f"{settings.prometheus_url}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    expected = {rule.get("alert") or rule["record"] for path in (PROJECT_ROOT / "ops/prometheus/rules").glob("*.yml")
                for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}
    assert set(loaded) == expected
    # the configuration as rendered: the reporter's port range, the probes through our blackbox port
    def targets() -> list[dict]:
        return _get(f"{settings.prometheus_url}/api/v1/targets")["data"]["activeTargets"]

    jobs = {job["job_name"] for job in yaml.safe_load((ops_stack.conf_dir() / "prometheus.yml").read_text())["scrape_configs"]}
    procs.wait_until(lambda: {t["labels"]["job"] for t in targets()} == jobs, 30, "Prometheus's scrape targets")
    by_job: dict[str, list] = {}
    for target in targets():
        by_job.setdefault(target["labels"]["job"], []).append(target)
    assert len(by_job["flink"]) == len(ops_stack.Scraped.from_environment().flink_metrics_ports)
    assert {t["labels"]["service"] for t in by_job["vigil-probe-http"]} == {"schema-registry", "analytics-api", "flink-rest"}
    assert all(t["scrapeUrl"].startswith(f"http://127.0.0.1:{settings.blackbox_port}/probe")
               for t in by_job["vigil-probe-http"] + by_job["vigil-probe-tcp"])

    # the watchdog goes Prometheus -> Alertmanager -> heartbeat webhook (Prometheus re-sends a
    # firing alert every minute: the first send can miss an Alertmanager not discovered yet)
    procs.wait_until(lambda: _received("heartbeat", "VigilWatchdog"), 150, "the watchdog at the heartbeat receiver")
    print(f"watchdog delivered {time.monotonic() - started:.1f} s after up began")

    # routing by severity and team, through Alertmanager's API
    alerts = [{"labels": {"alertname": "VigilTestPage", "severity": "page", "team": "platform"},
               "annotations": {"summary": "routing test"}},
              {"labels": {"alertname": "VigilTestQuality", "severity": "ticket", "team": "data-quality", "tenant": "t1"},
               "annotations": {"summary": "routing test"}},
              {"labels": {"alertname": "VigilTestFraud", "severity": "ticket", "team": "fraud"},
               "annotations": {"summary": "routing test"}},
              {"labels": {"alertname": "VigilTestTicket", "severity": "ticket", "team": "platform"},
               "annotations": {"summary": "routing test"}}]
    request = urllib.request.Request(f"{settings.alertmanager_url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()
    routes = {"page": "VigilTestPage", "data-quality": "VigilTestQuality", "fraud": "VigilTestFraud",
              "ticket": "VigilTestTicket"}
    procs.wait_until(lambda: all(_received(receiver, name) for receiver, name in routes.items()), 60,
                     "each test alert at its receiver")
    for receiver, name in routes.items():
        others = set(routes.values()) - {name}
        assert not any(_received(receiver, other) for other in others), f"{receiver} got another route's alert"

    # the CLI: status (exit 0, everything running) and alerts (the test alerts listed, pages first)
    capsys.readouterr()
    assert ops_stack.main(argparse.Namespace(action="status", wipe=False)) == 0
    assert ops_stack.main(argparse.Namespace(action="alerts", wipe=False)) == 0
    out = capsys.readouterr().out
    assert "ops prometheus: running" in out and "targets up" in out
    assert out.index("VigilTestPage") < out.index("VigilTestTicket")

    # up again: nothing restarted, configuration reloaded
    ops_stack.up(settings, log=print)
    assert {component.name: ops_stack.pid(component) for component in ops_stack.COMPONENTS} == pids
    assert "configuration reloaded" in capsys.readouterr().out

    ops_stack.down(log=print)
    assert not any(procs.is_alive(pid) for pid in pids.values())
    assert not any(procs.port_open("127.0.0.1", port) for port in
                   (settings.prometheus_port, settings.alertmanager_port, settings.blackbox_port, settings.webhook_port))
    assert ops_stack.main(argparse.Namespace(action="status", wipe=False)) == 3
    assert "ops prometheus: stopped" in capsys.readouterr().out


def test_a_taken_port_is_refused_before_anything_starts_and_down_leaves_foreign_pids_alone(own_stack):
    settings = own_stack
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.prometheus_port))
        squatter.listen()
        with pytest.raises(RuntimeError, match="VIGIL_PROMETHEUS_PORT"):
            ops_stack.up(settings, log=lambda *_: None)
    assert not any(procs.is_alive(procs.read_pid(component.pid_file())) for component in ops_stack.COMPONENTS)

    # a pid file that names a process which is not ours (a reused pid): down must not signal it
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        ops_stack.PROMETHEUS.pid_file().write_text(str(stranger.pid))
        ops_stack.down(log=lambda *_: None)
        assert stranger.poll() is None, "down signalled a process it did not start"
        assert not ops_stack.PROMETHEUS.pid_file().exists()
    finally:
        stranger.kill()
        stranger.wait()
    assert os.environ["VIGIL_STATE"] in str(ops_stack.home())
