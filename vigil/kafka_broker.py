"""A real single-node Apache Kafka 4.1 broker (KRaft) for local runs and tests.

Jars come from Maven Central (vigil.jars); data, logs and the pid file live under
`<state>/kafka/`. The broker binds to 127.0.0.1 only. Start, status and stop are idempotent.

The broker JVM loads the Prometheus JMX exporter agent (jar set `kafka-jmx-exporter`, rules in
ops/kafka/jmx-exporter.yml): its metrics page listens on 127.0.0.1:VIGIL_KAFKA_JMX_EXPORTER_PORT
(9404), the scrape job kafka-broker of ops/prometheus/prometheus.yml. Port 0 leaves the agent out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from vigil import jars, procs
from vigil.paths import PROJECT_ROOT, state_dir, sub

TEMPLATE_DIR = PROJECT_ROOT / "infra" / "kafka"
JMX_EXPORTER_CONFIG = PROJECT_ROOT / "ops" / "kafka" / "jmx-exporter.yml"
# Heap sized so that broker + Flink JobManager + TaskManager stay well under 6 GiB together.
DEFAULT_HEAP = "768m"


@dataclass(frozen=True)
class BrokerSettings:
    port: int = int(os.environ.get("VIGIL_KAFKA_PORT", "9092"))
    controller_port: int = int(os.environ.get("VIGIL_KAFKA_CONTROLLER_PORT", "9093"))
    heap: str = os.environ.get("VIGIL_KAFKA_HEAP", DEFAULT_HEAP)
    jmx_exporter_port: int = int(os.environ.get("VIGIL_KAFKA_JMX_EXPORTER_PORT", "9404"))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _home() -> Path:
    return sub(state_dir(), "kafka")


def _pid_file() -> Path:
    return _home() / "kafka.pid"


def pid() -> int | None:
    """The running broker's process id (from its pid file), for CPU and memory accounting."""
    return procs.read_pid(_pid_file())


def is_running(settings: BrokerSettings = BrokerSettings()) -> bool:
    return procs.is_alive(procs.read_pid(_pid_file())) and procs.port_open("127.0.0.1", settings.port)


def _java_cmd(classpath_dir: Path, settings: BrokerSettings, main: str, *args: str,
              agent: list[str] = ()) -> list[str]:
    logs = sub(_home(), "logs")
    return [
        shutil.which("java") or "java", "-Xms256m", f"-Xmx{settings.heap}", "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}", f"-Dlog4j2.configurationFile={TEMPLATE_DIR / 'log4j2.properties'}",
        *agent, "-cp", f"{classpath_dir}/*", main, *args,
    ]


def _jmx_exporter_agent(settings: BrokerSettings, log) -> list[str]:
    """The -javaagent option of the broker JVM (none when the port is 0). The host in the agent's
    argument makes its HTTP server bind to loopback only, not to every interface."""
    if not settings.jmx_exporter_port:
        return []
    jar, = jars.ensure("kafka-jmx-exporter", log).glob("jmx_prometheus_javaagent-*.jar")
    return [f"-javaagent:{jar}=127.0.0.1:{settings.jmx_exporter_port}:{JMX_EXPORTER_CONFIG}"]


def _render_config(settings: BrokerSettings) -> Path:
    data_dir = sub(_home(), "data")
    text = Template((TEMPLATE_DIR / "server.properties.template").read_text()).substitute(
        port=settings.port, controller_port=settings.controller_port, data_dir=data_dir)
    config = _home() / "server.properties"
    config.write_text(text)
    return config


def _format_storage(classpath_dir: Path, settings: BrokerSettings, config: Path) -> None:
    """Format the KRaft log folder once; an already formatted folder is kept (and its data)."""
    if (_home() / "data" / "meta.properties").exists():
        return
    cluster_id = uuid.uuid4().hex[:22]
    result = subprocess.run(
        _java_cmd(classpath_dir, settings, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                  "-c", str(config), "--ignore-formatted"),
        capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")


def start(settings: BrokerSettings = BrokerSettings(), log=print, timeout: float = 90) -> None:
    if is_running(settings):
        log(f"kafka: already running on {settings.bootstrap}")
        return
    if procs.port_open("127.0.0.1", settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start;"
                           " set VIGIL_KAFKA_PORT to use another port")
    if settings.jmx_exporter_port and procs.port_open("127.0.0.1", settings.jmx_exporter_port):
        # the agent would fail to bind and take the broker JVM down with it
        raise RuntimeError(f"port {settings.jmx_exporter_port} (the broker's JMX exporter) is taken;"
                           " set VIGIL_KAFKA_JMX_EXPORTER_PORT to another port, or 0 to leave the agent out")
    classpath_dir = jars.ensure("kafka-broker", log)
    agent = _jmx_exporter_agent(settings, log)
    config = _render_config(settings)
    _format_storage(classpath_dir, settings, config)
    log(f"kafka: starting broker on {settings.bootstrap} (logs: {_home() / 'logs'})")
    pid = procs.spawn(_java_cmd(classpath_dir, settings, "kafka.Kafka", str(config), agent=agent),
                      _home() / "logs" / "stdout.log", _pid_file())
    try:
        procs.wait_until(lambda: _ready(settings, pid), timeout, "the Kafka broker to answer")
    except TimeoutError:
        tail = (_home() / "logs" / "stdout.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Kafka did not become ready; last output:\n{tail}") from None
    log(f"kafka: ready (pid {pid})")


def _ready(settings: BrokerSettings, pid: int) -> bool:
    if not procs.is_alive(pid):
        raise RuntimeError("the Kafka broker exited during start-up; see " f"{_home() / 'logs'}")
    if not procs.port_open("127.0.0.1", settings.port):
        return False
    # The port opens before the broker can serve metadata; ask it for the cluster's brokers.
    from confluent_kafka.admin import AdminClient
    try:
        metadata = AdminClient({"bootstrap.servers": settings.bootstrap}).list_topics(timeout=2)
        return len(metadata.brokers) > 0
    except Exception:  # noqa: BLE001 - any client error means "not ready yet"
        return False


def stop(log=print) -> None:
    if procs.stop(_pid_file(), timeout=60):
        log("kafka: stopped")
    else:
        log("kafka: not running")


def status(settings: BrokerSettings = BrokerSettings()) -> str:
    pid = procs.read_pid(_pid_file())
    if is_running(settings):
        metrics = (f", metrics on 127.0.0.1:{settings.jmx_exporter_port}/metrics"
                   if settings.jmx_exporter_port else "")
        return f"kafka: running on {settings.bootstrap} (pid {pid}{metrics})"
    return "kafka: stopped"


def wipe() -> None:
    """Delete the broker's data (used by `vigil infra down --wipe`); the broker must be stopped."""
    if procs.is_alive(procs.read_pid(_pid_file())):
        raise RuntimeError("stop Kafka before wiping its data")
    shutil.rmtree(_home() / "data", ignore_errors=True)
