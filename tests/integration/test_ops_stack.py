"""`vigil ops up|down|status|alerts` with the real processes (Debian's prometheus,
prometheus-alertmanager and prometheus-blackbox-exporter, installed when missing), on ports and a
state folder of the test's own: every rule loaded, the watchdog delivered through Alertmanager to
the heartbeat receiver, alerts routed by severity and team to their receivers, `up` again reloads
without restarting, a port taken by someone else is refused before anything starts, and `down`
stops exactly what `up` started. Needs no Kafka and no Flink (their probes simply fail).
"""

from __future__ import annotations

import argparse
import json
import os
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
