"""`vigil ops up|down|status|alerts`: Prometheus, Alertmanager and the blackbox exporter on
127.0.0.1, with Vigil's alert rules (ops/), started and stopped by the project like its broker
and database.

- Binaries: Debian's `prometheus`, `prometheus-alertmanager` and `prometheus-blackbox-exporter`,
  installed with apt-get when missing and we are root (otherwise the error says what to install).
- Configuration: ops/prometheus/prometheus.yml and ops/alertmanager/alertmanager.yml rendered into
  `<state>/ops/conf/` at every `up`, with this machine's ports (the VIGIL_* variables below and
  those of the services scraped) and the checkout's rule files; ops/blackbox/blackbox.yml copied.
- Data: `<state>/ops/prometheus` (the metrics history), `<state>/ops/alertmanager` (silences,
  notification log); logs in `<state>/ops/logs/`, pid files in `<state>/ops/pids/`.
- Notifications: Alertmanager's receivers are webhooks on 127.0.0.1 served by a small process of
  this module (`python -m vigil.ops_stack webhook`), which appends every notification as a JSON
  line to `<state>/ops/notifications/<receiver>.jsonl` (page, ticket, data-quality, fraud,
  heartbeat). In production the receivers are the pager and the ticket queues.
- `up` is idempotent: on a running stack it re-renders the configuration and reloads Prometheus
  and Alertmanager (edit a rule, run `vigil ops up`). `down` stops only processes whose pid file
  this module wrote and whose command line is still ours (a reused pid is left alone).

Ports (127.0.0.1 only):
  VIGIL_PROMETHEUS_PORT (9090)      Prometheus UI and API
  VIGIL_ALERTMANAGER_PORT (9095)    Alertmanager UI and API (9093 is the Kafka controller's)
  VIGIL_BLACKBOX_PORT (9115)        blackbox exporter (probes of the registry, broker, API, Flink REST)
  VIGIL_ALERT_WEBHOOK_PORT (9097)   the receivers' webhook
  VIGIL_KAFKA_JMX_EXPORTER_PORT (9404)  scraped for the broker's JMX exporter agent (vigil.kafka_broker)
  VIGIL_PROMETHEUS_RETENTION (15d)  how long Prometheus keeps samples
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from vigil import procs
from vigil.paths import PROJECT_ROOT, state_dir, sub

OPS = PROJECT_ROOT / "ops"
PACKAGES = ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter")
RECEIVERS = ("page", "ticket", "data-quality", "fraud", "heartbeat")


def _port(variable: str, default: int):
    return field(default_factory=lambda: int(os.environ.get(variable, str(default))))


@dataclass(frozen=True)
class OpsSettings:
    prometheus_port: int = _port("VIGIL_PROMETHEUS_PORT", 9090)
    alertmanager_port: int = _port("VIGIL_ALERTMANAGER_PORT", 9095)
    blackbox_port: int = _port("VIGIL_BLACKBOX_PORT", 9115)
    webhook_port: int = _port("VIGIL_ALERT_WEBHOOK_PORT", 9097)
    kafka_jmx_port: int = _port("VIGIL_KAFKA_JMX_EXPORTER_PORT", 9404)
    retention: str = field(default_factory=lambda: os.environ.get("VIGIL_PROMETHEUS_RETENTION", "15d"))

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"


@dataclass(frozen=True)
class Scraped:
    """Where the services Prometheus watches listen on this machine (their own VIGIL_* variables)."""
    flink_metrics_ports: tuple[int, ...]
    flink_rest_port: int
    kafka_port: int
    registry_port: int
    api_port: int

    @classmethod
    def from_environment(cls) -> "Scraped":
        from vigil import flink_cluster, kafka_broker
        from vigil.api.settings import ApiSettings
        from vigil.registry.service import RegistrySettings

        cluster = flink_cluster.ClusterSettings()
        return cls(flink_metrics_ports=parse_ports(cluster.metrics_ports), flink_rest_port=cluster.rest_port,
                   kafka_port=kafka_broker.BrokerSettings().port, registry_port=RegistrySettings().port,
                   api_port=ApiSettings().port)


def parse_ports(text: str) -> tuple[int, ...]:
    """Flink's reporter port setting: a port, a range or a comma list of either.

    >>> parse_ports("9250-9253")
    (9250, 9251, 9252, 9253)
    >>> parse_ports("9250, 9300-9301")
    (9250, 9300, 9301)
    """
    ports: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        ports.extend(range(int(low), int(high or low) + 1))
    return tuple(ports)


# ---------------------------------------------------------------- folders, components

def home() -> Path:
    return sub(state_dir(), "ops")


def conf_dir() -> Path:
    return sub(home(), "conf")


def notifications_dir() -> Path:
    return sub(home(), "notifications")


@dataclass(frozen=True)
class Component:
    name: str
    binary: str            # what the process's argv[0] ends with (how we recognise it is ours)
    health_path: str

    def pid_file(self) -> Path:
        return sub(home(), "pids") / f"{self.name}.pid"

    def log_file(self) -> Path:
        return sub(home(), "logs") / f"{self.name}.log"


WEBHOOK = Component("webhook", "python", "/health")
ALERTMANAGER = Component("alertmanager", "prometheus-alertmanager", "/-/ready")
BLACKBOX = Component("blackbox", "prometheus-blackbox-exporter", "/-/healthy")
PROMETHEUS = Component("prometheus", "prometheus", "/-/ready")
# Start order (each one's targets are up before it); stopped in reverse.
COMPONENTS = (WEBHOOK, ALERTMANAGER, BLACKBOX, PROMETHEUS)


def _port_of(component: Component, settings: OpsSettings) -> int:
    return {"webhook": settings.webhook_port, "alertmanager": settings.alertmanager_port,
            "blackbox": settings.blackbox_port, "prometheus": settings.prometheus_port}[component.name]


_PORT_VARIABLES = {"webhook": "VIGIL_ALERT_WEBHOOK_PORT", "alertmanager": "VIGIL_ALERTMANAGER_PORT",
                   "blackbox": "VIGIL_BLACKBOX_PORT", "prometheus": "VIGIL_PROMETHEUS_PORT"}


def _ours(component: Component, pid: int | None) -> bool:
    """The recorded pid is alive and still runs our binary on our state folder (not a reused pid)."""
    if not procs.is_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (bool(argv) and Path(argv[0].decode(errors="replace")).name.startswith(component.binary)
            and any(str(home()).encode() in arg for arg in argv))


def pid(component: Component) -> int | None:
    found = procs.read_pid(component.pid_file())
    return found if _ours(component, found) else None


def _answers(component: Component, settings: OpsSettings) -> bool:
    url = f"http://127.0.0.1:{_port_of(component, settings)}{component.health_path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def is_running(component: Component, settings: OpsSettings | None = None) -> bool:
    settings = settings or OpsSettings()
    return pid(component) is not None and _answers(component, settings)


# ---------------------------------------------------------------- install

def _binary(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)


def missing_packages() -> list[str]:
    """Each package is named after its binary."""
    return [package for package in PACKAGES if _binary(package) is None]


def ensure_installed(log=print) -> None:
    """Debian's packages, installed once per machine (under a lock: parallel test workers never run
    apt-get together; apt's own lock wait covers anyone else's apt). On a host with systemd the
    packages also enable services of their own (prometheus on :9090, alertmanager on :9093, the
    Kafka controller's port): `systemctl disable --now prometheus prometheus-alertmanager
    prometheus-blackbox-exporter` leaves the ports to this stack (ops/README.md)."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing Debian packages: {' '.join(missing)}; "
                           f"sudo apt-get install -y --no-install-recommends {' '.join(missing)}")
    with open("/tmp/vigil-apt-prometheus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = missing_packages()
        if not missing:
            return
        log(f"ops: installing {' '.join(missing)} (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300",
                   *missing]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
            result = subprocess.run(install, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"apt-get install {' '.join(missing)} failed:\n"
                                   f"{result.stdout[-1500:]}{result.stderr[-1500:]}")


# ---------------------------------------------------------------- configuration

def render_prometheus_config(settings: OpsSettings, scraped: Scraped, rules_dir: Path | None = None) -> dict:
    """ops/prometheus/prometheus.yml with this machine's ports and absolute rule paths."""
    import yaml

    config = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str((rules_dir or OPS / "prometheus" / "rules") / "*.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{settings.alertmanager_port}"]}]
    by_service = {"schema-registry": f"http://127.0.0.1:{scraped.registry_port}/config",
                  "analytics-api": f"http://127.0.0.1:{scraped.api_port}/health",
                  "flink-rest": f"http://127.0.0.1:{scraped.flink_rest_port}/overview",
                  "kafka-broker": f"127.0.0.1:{scraped.kafka_port}"}
    by_job = {"flink": [f"127.0.0.1:{port}" for port in scraped.flink_metrics_ports],
              "vigil-blackbox": [f"127.0.0.1:{settings.blackbox_port}"],
              "kafka-broker": [f"127.0.0.1:{settings.kafka_jmx_port}"],
              "prometheus": [f"127.0.0.1:{settings.prometheus_port}"],
              "alertmanager": [f"127.0.0.1:{settings.alertmanager_port}"]}
    for job in config["scrape_configs"]:
        for group in job.get("static_configs", []):
            service = group.get("labels", {}).get("service")
            if service is not None:
                group["targets"] = [by_service[service]]
            elif job["job_name"] in by_job:
                group["targets"] = by_job[job["job_name"]]
            else:
                raise ValueError(f"prometheus.yml: no local target known for scrape job {job['job_name']!r}")
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = f"127.0.0.1:{settings.blackbox_port}"
    return config


def render_alertmanager_config(settings: OpsSettings) -> dict:
    """ops/alertmanager/alertmanager.yml with the webhook on this machine's port."""
    import yaml

    config = yaml.safe_load((OPS / "alertmanager" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            parts = urlsplit(hook["url"])
            hook["url"] = urlunsplit(parts._replace(netloc=f"127.0.0.1:{settings.webhook_port}"))
    return config


def write_configs(settings: OpsSettings, scraped: Scraped) -> dict[str, Path]:
    import yaml

    paths = {"prometheus": conf_dir() / "prometheus.yml", "alertmanager": conf_dir() / "alertmanager.yml",
             "blackbox": conf_dir() / "blackbox.yml"}
    # Copied, so that every process's command line names our state folder (how `down` knows it).
    shutil.copyfile(OPS / "blackbox" / "blackbox.yml", paths["blackbox"])
    header = "# Rendered by vigil/ops_stack.py from ops/ at `vigil ops up`: edit ops/, not this file.\n"
    paths["prometheus"].write_text(header + yaml.safe_dump(render_prometheus_config(settings, scraped), sort_keys=False))
    paths["alertmanager"].write_text(header + yaml.safe_dump(render_alertmanager_config(settings), sort_keys=False))
    return paths


def _command(component: Component, settings: OpsSettings, configs: dict[str, Path]) -> list[str]:
    if component is WEBHOOK:
        return [sys.executable, "-m", "vigil.ops_stack", "webhook", "--port", str(settings.webhook_port),
                "--out", str(notifications_dir())]
    if component is ALERTMANAGER:
        return [_binary("prometheus-alertmanager"), f"--config.file={configs['alertmanager']}",
                f"--storage.path={sub(home(), 'alertmanager')}",
                f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
                f"--web.external-url={settings.alertmanager_url}/",
                "--cluster.listen-address="]              # one instance: no gossip port
    if component is BLACKBOX:
        return [_binary("prometheus-blackbox-exporter"), f"--config.file={configs['blackbox']}",
                f"--web.listen-address=127.0.0.1:{settings.blackbox_port}"]
    return [_binary("prometheus"), f"--config.file={configs['prometheus']}",
            f"--storage.tsdb.path={sub(home(), 'prometheus')}",
            f"--storage.tsdb.retention.time={settings.retention}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
            f"--web.external-url={settings.prometheus_url}/",
            "--web.enable-lifecycle"]                      # POST /-/reload after `vigil ops up`


# ---------------------------------------------------------------- start, stop

def _http(url: str, method: str = "GET", body=None, timeout: float = 5):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def _start_lock():
    """One process at a time starts or stops the stack (two shells, parallel test workers)."""
    lock = open(home() / "start.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def up(settings: OpsSettings | None = None, log=print, timeout: float = 60) -> None:
    """Install if missing, render the configuration, start what is not running, reload what is."""
    settings = settings or OpsSettings()
    with _start_lock():
        ensure_installed(log)
        # Every port first: a refusal must not leave half a stack behind.
        for component in COMPONENTS:
            port = _port_of(component, settings)
            if pid(component) is None and procs.port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} ({component.name}) is taken by a process this project did not "
                                   f"start; set {_PORT_VARIABLES[component.name]} to use another port")
        configs = write_configs(settings, Scraped.from_environment())
        _check_configs(configs)
        for component in COMPONENTS:
            _start(component, settings, configs, log, timeout)
    log(f"ops: Prometheus {settings.prometheus_url} (alerts: {settings.prometheus_url}/alerts), "
        f"Alertmanager {settings.alertmanager_url}, notifications in {notifications_dir()}")


def _check_configs(configs: dict[str, Path]) -> None:
    """Refuse to (re)start on a configuration the tools reject, with their message."""
    checks = [["promtool", "check", "config", str(configs["prometheus"])],
              ["amtool", "check-config", str(configs["alertmanager"])]]
    for cmd in checks:
        tool = _binary(cmd[0])
        if tool is None:
            continue
        result = subprocess.run([tool, *cmd[1:]], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def _start(component: Component, settings: OpsSettings, configs: dict[str, Path], log, timeout: float) -> None:
    port = _port_of(component, settings)
    running = pid(component)
    if running is not None:
        if component in (PROMETHEUS, ALERTMANAGER):
            _http(f"http://127.0.0.1:{port}/-/reload", method="POST")
            log(f"ops: {component.name} already running on 127.0.0.1:{port} (pid {running}); configuration reloaded")
        else:
            log(f"ops: {component.name} already running on 127.0.0.1:{port} (pid {running})")
        return
    component.pid_file().unlink(missing_ok=True)
    started = procs.spawn(_command(component, settings, configs), component.log_file(), component.pid_file(),
                          cwd=home())

    def ready() -> bool:
        if not procs.is_alive(started):
            raise RuntimeError(f"{component.name} exited during start-up; last lines of {component.log_file()}:\n"
                               + component.log_file().read_text(errors="replace")[-2000:])
        return _answers(component, settings)

    procs.wait_until(ready, timeout, f"{component.name} to answer on 127.0.0.1:{port}")
    log(f"ops: {component.name} running on 127.0.0.1:{port} (pid {started}, log {component.log_file()})")


def down(log=print, wipe: bool = False) -> None:
    """Stop what this module started (reverse order); with wipe, delete the metrics history,
    silences and notifications too."""
    with _start_lock():
        for component in reversed(COMPONENTS):
            running = pid(component)
            if running is None:
                component.pid_file().unlink(missing_ok=True)
                continue
            procs.stop(component.pid_file(), timeout=30)
            log(f"ops: {component.name} stopped")
        if wipe:
            for folder in ("prometheus", "alertmanager", "notifications"):
                shutil.rmtree(home() / folder, ignore_errors=True)
            log(f"ops: metrics history, silences and notifications wiped ({home()})")


def status(settings: OpsSettings | None = None) -> str:
    settings = settings or OpsSettings()
    lines = []
    for component in COMPONENTS:
        running = pid(component)
        port = _port_of(component, settings)
        if running is None:
            lines.append(f"ops {component.name}: stopped")
        elif not _answers(component, settings):
            lines.append(f"ops {component.name}: pid {running} runs but does not answer on 127.0.0.1:{port}"
                         f" (see {component.log_file()})")
        else:
            lines.append(f"ops {component.name}: running on 127.0.0.1:{port} (pid {running})" + _summary(component, settings))
    return "\n".join(lines)


def _summary(component: Component, settings: OpsSettings) -> str:
    try:
        if component is PROMETHEUS:
            targets = _http(f"{settings.prometheus_url}/api/v1/targets?state=active")["data"]["activeTargets"]
            up_count = sum(1 for target in targets if target["health"] == "up")
            return f", {up_count}/{len(targets)} targets up"
        if component is ALERTMANAGER:
            return f", {len(active_alerts(settings))} alert(s) active"
    except (OSError, KeyError, ValueError):
        pass
    return ""


# ---------------------------------------------------------------- alerts

def active_alerts(settings: OpsSettings | None = None, silenced: bool = False) -> list[dict]:
    """Alertmanager's active alerts (GET /api/v2/alerts), VigilWatchdog left out."""
    settings = settings or OpsSettings()
    query = "" if silenced else "?silenced=false&inhibited=false"
    alerts = _http(f"{settings.alertmanager_url}/api/v2/alerts{query}")
    return [alert for alert in alerts if alert["labels"].get("alertname") != "VigilWatchdog"]


def pending_alerts(settings: OpsSettings | None = None) -> list[dict]:
    """Prometheus's alerts that are pending (condition true, `for` not yet over)."""
    settings = settings or OpsSettings()
    alerts = _http(f"{settings.prometheus_url}/api/v1/alerts")["data"]["alerts"]
    return [alert for alert in alerts if alert["state"] == "pending"]


def format_alerts(firing: list[dict], pending: list[dict]) -> str:
    """One line per alert, pages first: what an operator reads at night.

    >>> print(format_alerts([{"labels": {"alertname": "VigilFlinkJobNotRunning", "severity": "page",
    ...   "job_name": "vigil_ingest", "team": "platform"}, "annotations": {"summary": "Flink job vigil_ingest is not running",
    ...   "runbook_url": "docs/runbooks/alerts/VigilFlinkJobNotRunning.md"}, "startsAt": "2026-12-03T01:02:03.456Z"}], []))
    FIRING  page    VigilFlinkJobNotRunning  job_name=vigil_ingest  since 2026-12-03T01:02:03Z
            Flink job vigil_ingest is not running
            runbook: docs/runbooks/alerts/VigilFlinkJobNotRunning.md
    """
    order = {"page": 0, "ticket": 1}
    rows = [("FIRING", alert) for alert in firing] + [("pending", alert) for alert in pending]
    rows.sort(key=lambda row: (row[0] != "FIRING", order.get(row[1]["labels"].get("severity"), 2),
                               row[1]["labels"].get("alertname", "")))
    lines = []
    for state, alert in rows:
        labels = alert["labels"]
        extra = "  ".join(f"{key}={value}" for key, value in sorted(labels.items())
                          if key not in ("alertname", "severity", "team"))
        since = re.sub(r"\.\d+", "", alert.get("startsAt") or alert.get("activeAt") or "")
        lines.append(f"{state:<7} {labels.get('severity', '?'):<7} {labels.get('alertname')}  {extra}  since {since}")
        lines.append(f"        {alert.get('annotations', {}).get('summary', '')}")
        lines.append(f"        runbook: {alert.get('annotations', {}).get('runbook_url', '')}")
    return "\n".join(lines) if lines else "no alert firing or pending"


# ---------------------------------------------------------------- the receivers' webhook

MAX_NOTIFICATION_BYTES = 1024 * 1024     # Alertmanager groups alerts; a notification is a few KB


def webhook_verdict(receiver: str, content_type: str | None, length: str | None) -> tuple[int, str] | None:
    """Why a request to the webhook is refused before its body is read, as (status, reason);
    None when it may be read.

    >>> webhook_verdict("page", "application/json", "120") is None
    True
    >>> webhook_verdict("../etc", "application/json", "5"), webhook_verdict("page", "text/xml", "5")[0]
    ((404, 'no such receiver'), 415)
    >>> webhook_verdict("page", "application/json", "-1")[0], webhook_verdict("page", "application/json", "9" * 9)[0]
    (411, 413)
    """
    if receiver not in RECEIVERS:
        return 404, "no such receiver"
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        return 415, "Alertmanager sends application/json"
    if not (length or "").isdigit() or not length.isascii():
        return 411, "a Content-Length is required"
    if int(length) > MAX_NOTIFICATION_BYTES:
        return 413, f"a notification is at most {MAX_NOTIFICATION_BYTES} bytes"
    return None


def is_notification(payload) -> bool:
    """Alertmanager's webhook payload (version 4): an object with a list of alert objects."""
    return (isinstance(payload, dict) and payload.get("version") == "4" and isinstance(payload.get("alerts"), list)
            and all(isinstance(a, dict) and isinstance(a.get("labels"), dict) for a in payload["alerts"]))


def serve_webhook(port: int, out: Path) -> None:
    """Alertmanager's webhook receivers: POST /<receiver> appends the notification as one JSON
    line to <out>/<receiver>.jsonl; GET /health answers 200. 127.0.0.1 only. Anything that is
    not an Alertmanager notification is refused with a 4xx and not stored; a client that does
    not send its request within 10 s is dropped (one thread per connection)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    out.mkdir(parents=True, exist_ok=True)

    class Handler(BaseHTTPRequestHandler):
        timeout = 10          # seconds for each read: a slow client does not hold a thread

        def answer(self, status: int, reason: str = "") -> None:
            body = json.dumps({"error": reason}).encode() if reason else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.close_connection = True

        def do_GET(self):  # noqa: N802 - http.server's naming
            self.answer(200) if self.path == "/health" else self.answer(404, "not found")

        def do_POST(self):  # noqa: N802
            receiver = self.path[1:] if self.path.startswith("/") else ""   # exactly /<receiver>
            refused = webhook_verdict(receiver, self.headers.get("Content-Type"), self.headers.get("Content-Length"))
            if refused:
                return self.answer(*refused)
            try:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            except (ValueError, RecursionError, OSError):   # not JSON, nested too deep, or the body never came
                return self.answer(400, "the body is not JSON")
            if not is_notification(payload):
                return self.answer(400, "not an Alertmanager notification (version 4, alerts)")
            line = json.dumps({"received_at": time.time(), "receiver": receiver, "notification": payload})
            with open(out / f"{receiver}.jsonl", "a") as file:
                file.write(line + "\n")
            self.answer(200)

        def _refuse_method(self):
            self.answer(405, "POST /<receiver> or GET /health")

        do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method  # noqa: N815

        def log_message(self, *args):  # one line per notification is in the file already
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def notifications(receiver: str) -> list[dict]:
    """What the webhook received for `receiver` so far (oldest first)."""
    path = notifications_dir() / f"{receiver}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- command line

def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status", "alerts"],
                        help="up: start (or reload) Prometheus, Alertmanager and the probes; alerts: what fires now")
    parser.add_argument("--wipe", action="store_true", help="with down: delete the metrics history, silences "
                                                            "and notifications")
    parser.set_defaults(func=main)


def add_parser(sub_parsers) -> None:
    """`vigil ops ...` (vigil/cli.py: `ops_stack.add_parser(sub)`)."""
    _configure(sub_parsers.add_parser("ops", help="Prometheus and Alertmanager on 127.0.0.1 with Vigil's alert rules"))


def main(args) -> int:
    """Exit codes: 0 done, 1 refused or failed (one line says why), 3 the stack is not running
    (status, alerts)."""
    settings = OpsSettings()
    try:
        if args.action == "up":
            up(settings)
        elif args.action == "down":
            down(wipe=args.wipe)
        elif args.action == "status":
            print(status(settings))
            return 0 if all(pid(component) is not None for component in COMPONENTS) else 3
        else:
            if not is_running(ALERTMANAGER, settings) or not is_running(PROMETHEUS, settings):
                print("vigil ops: Prometheus or Alertmanager is not running: `vigil ops up`", file=sys.stderr)
                return 3
            print(format_alerts(active_alerts(settings), pending_alerts(settings)))
    except (RuntimeError, TimeoutError) as error:
        print(f"vigil ops: {error}", file=sys.stderr)
        return 1
    return 0


def _module_main(argv: list[str]) -> int:
    if argv[:1] == ["webhook"]:
        parser = argparse.ArgumentParser(prog="python -m vigil.ops_stack webhook")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--out", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        serve_webhook(args.port, args.out)
        return 0
    parser = argparse.ArgumentParser(prog="python -m vigil.ops_stack", description=__doc__.split("\n")[0])
    _configure(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(_module_main(sys.argv[1:]))
