"""The session's Kafka broker (vigil.kafka_broker, KRaft, broker and controller in one JVM) serves
the JMX exporter agent's page on 127.0.0.1:VIGIL_KAFKA_JMX_EXPORTER_PORT with the series
ops/README.md promises, and Prometheus, started by `vigil ops up` on ports of the test's own,
scrapes it under job kafka-broker and evaluates VigilKafkaOfflinePartitions on it.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
import urllib.request

import pytest
import yaml

from vigil import kafka_broker, ops_stack, procs
from vigil.paths import PROJECT_ROOT

OPS_PORTS = ("VIGIL_PROMETHEUS_PORT", "VIGIL_ALERTMANAGER_PORT", "VIGIL_BLACKBOX_PORT", "VIGIL_ALERT_WEBHOOK_PORT")


def _exported(port: int) -> dict[str, float]:
    """Unlabelled samples of the exporter's page, by name (the per-topic rates have labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        page = response.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(kafka_\w+) (\S+)$", page, re.M)}


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (Linux /proc/net, hex as the kernel writes it)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in open(table).read().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _query(settings: ops_stack.OpsSettings, expr: str) -> list[dict]:
    url = f"{settings.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def _loaded_rule(settings: ops_stack.OpsSettings, name: str) -> dict:
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/rules?type=alert", timeout=5) as response:
        groups = json.loads(response.read())["data"]["groups"]
    return next(r for g in groups for r in g["rules"] if r["name"] == name)


@pytest.fixture
def ops(kafka, tmp_path, monkeypatch):
    """Prometheus and friends in a state folder and on ports of the test's own (the broker's
    exporter port stays the session's)."""
    monkeypatch.setenv("VIGIL_STATE", str(tmp_path / "state"))
    for variable in OPS_PORTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            monkeypatch.setenv(variable, str(s.getsockname()[1]))
    ops_stack.ensure_installed()
    settings = ops_stack.OpsSettings()
    ops_stack.up(settings, log=print)
    yield settings
    ops_stack.down(log=print)


def test_exporter_serves_the_controller_gauges_on_loopback_and_the_offline_rule_evaluates(ops):
    port = kafka_broker.BrokerSettings().jmx_exporter_port
    assert port == ops.kafka_jmx_port
    samples = _exported(port)
    assert samples["kafka_controller_offline_partitions"] == 0
    assert samples["kafka_controller_active_controller_count"] == 1
    assert {"kafka_server_under_replicated_partitions", "kafka_server_under_min_isr_partitions"} <= set(samples)
    # IPv4 127.0.0.1, or its IPv4-mapped IPv6 form, as the kernel writes them; nothing else
    assert _listening_addresses(port) <= {"0100007F", "0000000000000000FFFF00000100007F"}, "not loopback only"

    rule = next(rule for group in yaml.safe_load((PROJECT_ROOT / "ops/prometheus/rules/infra.yml").read_text())["groups"]
                for rule in group["rules"] if rule.get("alert") == "VigilKafkaOfflinePartitions")
    gauge = rule["expr"].rsplit(">", 1)[0]  # the rule's expression without its threshold
    procs.wait_until(lambda: _query(ops, gauge), 60, "Prometheus to scrape the broker's exporter")
    [series] = _query(ops, gauge)
    assert series["metric"] == {"instance": f"127.0.0.1:{port}"} and series["value"][1] == "0"
    assert _query(ops, rule["expr"]) == []

    # a rule reads "unknown" until its group's first evaluation (interval after the load): wait for it
    procs.wait_until(lambda: _loaded_rule(ops, "VigilKafkaOfflinePartitions")["health"] != "unknown", 60,
                     "Prometheus to evaluate the rule's group once")
    loaded = _loaded_rule(ops, "VigilKafkaOfflinePartitions")
    assert (loaded["health"], loaded["state"], loaded.get("lastError", "")) == ("ok", "inactive", "")
