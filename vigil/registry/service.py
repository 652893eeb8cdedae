"""The local schema registry process: started by `vigil infra up`, stopped by `vigil infra down`.

It runs `python -m vigil.registry.server` from this virtualenv, on 127.0.0.1:`VIGIL_REGISTRY_PORT`
(8085 by default; Flink's REST API has 8081), against the local broker. Its state is the
`_schemas` topic, so stopping or killing it loses nothing; pid and log live in `<state>/registry/` (one pid file per port).
Every other component finds the registry through `registry_url()`, so pointing
`VIGIL_SCHEMA_REGISTRY_URL` at Confluent Schema Registry or Apicurio (ccompat API) replaces it.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vigil import procs
from vigil.paths import PROJECT_ROOT, state_dir, sub

DEFAULT_PORT = 8085


@dataclass(frozen=True)
class RegistrySettings:
    port: int = int(os.environ.get("VIGIL_REGISTRY_PORT", str(DEFAULT_PORT)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def registry_url() -> str:
    """Where every producer, job and tool finds the registry: VIGIL_SCHEMA_REGISTRY_URL, else the
    local one."""
    return os.environ.get("VIGIL_SCHEMA_REGISTRY_URL") or RegistrySettings().url


def _home() -> Path:
    return sub(state_dir(), "registry")


def _pid_file(settings: RegistrySettings) -> Path:
    return _home() / f"registry-{settings.port}.pid"


def healthy(url: str, timeout: float = 2.0) -> bool:
    """The registry answers GET /config with a compatibility level once it has read the log."""
    try:
        with urllib.request.urlopen(f"{url}/config", timeout=timeout) as response:
            return "compatibilityLevel" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def is_running(settings: RegistrySettings = RegistrySettings()) -> bool:
    return procs.is_alive(procs.read_pid(_pid_file(settings))) and healthy(settings.url)


def start(bootstrap: str, settings: RegistrySettings = RegistrySettings(), log=print,
          timeout: float = 60) -> int:
    """Start the registry unless it runs; returns its pid."""
    if is_running(settings):
        log(f"registry: already running on {settings.url}")
        return procs.read_pid(_pid_file(settings))
    if procs.port_open("127.0.0.1", settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start;"
                           " set VIGIL_REGISTRY_PORT to use another port")
    log_file = _home() / f"registry-{settings.port}.log"
    cmd = [sys.executable, "-m", "vigil.registry.server", "--bootstrap", bootstrap,
           "--port", str(settings.port)]
    pid = procs.spawn(cmd, log_file, _pid_file(settings), cwd=PROJECT_ROOT)

    def ready() -> bool:
        if not procs.is_alive(pid):
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the schema registry exited during start-up:\n{tail}")
        return healthy(settings.url)

    procs.wait_until(ready, timeout, "the schema registry to answer")
    log(f"registry: ready on {settings.url} (pid {pid}, state in Kafka topic _schemas)")
    return pid


def stop(settings: RegistrySettings = RegistrySettings(), log=print) -> None:
    log("registry: stopped" if procs.stop(_pid_file(settings), timeout=15) else "registry: not running")


def pid(settings: RegistrySettings = RegistrySettings()) -> int | None:
    return procs.read_pid(_pid_file(settings))


def status(settings: RegistrySettings = RegistrySettings()) -> str:
    if is_running(settings):
        return f"registry: running on {settings.url} (pid {procs.read_pid(_pid_file(settings))})"
    return "registry: stopped"
