"""The alerting in ops/: rule files checked and unit-tested by promtool (input series, expected
alerts), the Prometheus and Alertmanager configurations checked by promtool and amtool (routing
included), and the conventions every alert keeps: severity and team labels, a summary, a runbook
that exists, a unit test where it fires and one where it must not, every metric it reads listed in
ops/README.md. No JVM and no service: promtool and amtool only (Debian packages `prometheus`
and `prometheus-alertmanager`, installed with apt-get when missing and we are root).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vigil.paths import PROJECT_ROOT

OPS = PROJECT_ROOT / "ops"
RULE_FILES = sorted((OPS / "prometheus" / "rules").glob("*.yml"))
TEST_FILES = sorted((OPS / "prometheus" / "tests").glob("*.test.yml"))
ALERTMANAGER_CONFIG = OPS / "alertmanager" / "alertmanager.yml"
ALWAYS_FIRING = {"VigilWatchdog"}              # a heartbeat has no quiet case
RUNBOOK_SECTIONS = ("## What it means", "## Confirm", "## Recover", "## Escalate")


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    from vigil import ops_stack

    try:
        ops_stack.ensure_installed(log=print)
    except RuntimeError as error:
        pytest.fail(f"the alerting tests need promtool and amtool: {error}")
    return {name: shutil.which(name) or f"/usr/bin/{name}" for name in ("promtool", "amtool")}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


def _rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def _alerts() -> list[dict]:
    return [rule for rule in _rules() if "alert" in rule]


def test_rule_files_pass_promtool_check(tools):
    result = _run([tools["promtool"], "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_alerts()) >= 20


def test_rule_unit_tests_pass(tools):
    """Every test file: input series, the alerts expected at given times (labels and annotations)."""
    result = _run([tools["promtool"], "test", "rules", *map(str, TEST_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_a_broken_rule_fails_its_unit_tests(tools, tmp_path):
    """The unit tests can fail: with the data-quality alert's default threshold moved from 5 % to
    50 %, the case where a new tenant rejects 10 % of its records is no longer met."""
    shutil.copytree(OPS / "prometheus", tmp_path / "prometheus")
    rules = tmp_path / "prometheus" / "rules" / "data-quality.yml"
    text = rules.read_text()
    assert text.count("vigil:ingest_dlq_ratio:rate2m > 0.05 unless") == 1
    rules.write_text(text.replace("vigil:ingest_dlq_ratio:rate2m > 0.05 unless", "vigil:ingest_dlq_ratio:rate2m > 0.5 unless"))
    result = _run([tools["promtool"], "test", "rules", str(tmp_path / "prometheus" / "tests" / "data-quality.test.yml")])
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr and "VigilTenantDataQuality" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - quiet - ALWAYS_FIRING == set(), "alerts without a case where they must stay quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_severity_team_summary_and_an_existing_runbook():
    for rule in _alerts():
        name = rule["alert"]
        assert re.fullmatch(r"Vigil[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"page", "ticket", "none"}, name
        assert rule["labels"]["team"] in {"platform", "data-quality", "fraud"}, name
        assert rule["annotations"]["summary"].strip(), name
        runbook = rule["annotations"]["runbook_url"]
        assert runbook == f"docs/runbooks/alerts/{name}.md", name
        text = (PROJECT_ROOT / runbook).read_text()
        missing = [section for section in RUNBOOK_SECTIONS if section not in text]
        assert not missing, f"{runbook} lacks {missing}"
        assert f"`{name}`" in text or f"# {name}" in text, f"{runbook} does not name its alert"


def test_every_metric_the_rules_read_is_listed_in_ops_readme():
    """ops/README.md lists each metric as exported today or as still missing (name, labels, type)."""
    readme = (OPS / "README.md").read_text()
    metrics = set()
    for rule in _rules():
        # metric names, not recording rules (vigil:<...>:<...>)
        metrics |= set(re.findall(r"(?<![\w:])(flink_[A-Za-z0-9_]+|kafka_[a-z0-9_]+|probe_success)\b", rule["expr"]))
    assert metrics
    assert sorted(metric for metric in metrics if f"`{metric}" not in readme) == []


def test_prometheus_config_as_checked_in_and_as_rendered_for_other_ports(tools, tmp_path, monkeypatch):
    from vigil import ops_stack

    result = _run([tools["promtool"], "check", "config", str(OPS / "prometheus" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr

    for variable, port in (("VIGIL_PROMETHEUS_PORT", "29090"), ("VIGIL_ALERTMANAGER_PORT", "29095"),
                           ("VIGIL_BLACKBOX_PORT", "29115"), ("VIGIL_KAFKA_JMX_EXPORTER_PORT", "29404")):
        monkeypatch.setenv(variable, port)
    scraped = ops_stack.Scraped(flink_metrics_ports=ops_stack.parse_ports("29250-29252"), flink_rest_port=28081,
                                kafka_port=29092, registry_port=28085, api_port=28090)
    config = ops_stack.render_prometheus_config(ops_stack.OpsSettings(), scraped)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = _run([tools["promtool"], "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr

    targets = {job["job_name"]: sorted(t for group in job["static_configs"] for t in group["targets"])
               for job in config["scrape_configs"]}
    assert targets["flink"] == ["127.0.0.1:29250", "127.0.0.1:29251", "127.0.0.1:29252"]
    assert targets["vigil-probe-http"] == ["http://127.0.0.1:28081/overview", "http://127.0.0.1:28085/config",
                                           "http://127.0.0.1:28090/health"]
    assert targets["vigil-probe-tcp"] == ["127.0.0.1:29092"]
    assert targets["kafka-broker"] == ["127.0.0.1:29404"]
    assert targets["prometheus"] == ["127.0.0.1:29090"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:29095"]
    probes = [job for job in config["scrape_configs"] if job["job_name"].startswith("vigil-probe")]
    assert {relabel["replacement"] for job in probes for relabel in job["relabel_configs"]
            if relabel.get("target_label") == "__address__"} == {"127.0.0.1:29115"}
    assert config["rule_files"] == [str(OPS / "prometheus" / "rules" / "*.yml")]


def _receiver(tools, config: Path, labels: dict[str, str]) -> str:
    result = _run([tools["amtool"], "config", "routes", "test", f"--config.file={config}",
                   *(f"{key}={value}" for key, value in labels.items())])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_alertmanager_config_routes_each_alert_by_severity_and_team(tools):
    result = _run([tools["amtool"], "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    expected = {("page", "platform"): "page", ("page", "fraud"): "page", ("ticket", "platform"): "ticket",
                ("ticket", "data-quality"): "data-quality", ("ticket", "fraud"): "fraud",
                ("none", "platform"): "heartbeat"}
    for rule in _alerts():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        assert _receiver(tools, ALERTMANAGER_CONFIG, labels) == expected[(labels["severity"], labels["team"])], labels


def test_alertmanager_inhibitions_name_existing_alerts_and_the_webhook_port_is_rendered(monkeypatch):
    from vigil import ops_stack

    names = {rule["alert"] for rule in _alerts()}
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            key, op, value = re.fullmatch(r'(\w+)(=~|=)"(.*)"', matcher).groups()
            if key == "alertname":
                matched = {name for name in names if re.fullmatch(value, name)} if op == "=~" else {value} & names
                assert matched, f"inhibit rule matcher {matcher} matches no alert"
    monkeypatch.setenv("VIGIL_ALERT_WEBHOOK_PORT", "29097")
    rendered = ops_stack.render_alertmanager_config(ops_stack.OpsSettings())
    urls = [hook["url"] for receiver in rendered["receivers"] for hook in receiver["webhook_configs"]]
    assert urls and all(url.startswith("http://127.0.0.1:29097/") for url in urls)
    assert {url.rsplit("/", 1)[1] for url in urls} == set(ops_stack.RECEIVERS)
