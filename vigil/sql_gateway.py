"""Flink's SQL Gateway beside the local cluster, so BI tools and notebooks can submit statements
over REST (127.0.0.1 only, port VIGIL_SQL_GATEWAY_PORT, default 8083); `vigil cluster up` starts
it, `vigil cluster down` stops it.

It runs bin/sql-gateway.sh of the apache-flink wheel in the foreground of its own process (the
pid file holds the JVM's pid) with the cluster's configuration, so the jobs of its sessions go to
the local cluster, and vigil.sql_cli's FLINK_OPT_DIR, which holds the gateway jar the wheel lacks.

A gateway session starts empty: a client runs vigil.sql_cli.init_statements() first (what
`vigil sql --print-init` prints; `Session.open(url, init=True)` here does it), then queries the
catalog. `Session` is a small client of the REST API for Python notebooks and the tests.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from vigil import flink_cluster, procs
from vigil.paths import sub


@dataclass(frozen=True)
class GatewaySettings:
    port: int = int(os.environ.get("VIGIL_SQL_GATEWAY_PORT", "8083"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _pid_file():
    return sub(flink_cluster.home(), "pid") / "sql-gateway.pid"


def is_running(settings: GatewaySettings = GatewaySettings()) -> bool:
    return procs.is_alive(procs.read_pid(_pid_file())) and _info(settings) is not None


def _info(settings: GatewaySettings) -> dict | None:
    try:
        return _request("GET", f"{settings.url}/v1/info", timeout=2)
    except (OSError, GatewayError):
        return None


def start(settings: GatewaySettings = GatewaySettings(), log=print) -> None:
    if is_running(settings):
        log(f"sql gateway: already running, REST {settings.url}")
        return
    if procs.port_open("127.0.0.1", settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start; "
                           "set VIGIL_SQL_GATEWAY_PORT")
    from vigil import sql_cli

    env = sql_cli.environment()
    options = {"sql-gateway.endpoint.rest.address": "127.0.0.1",
               "sql-gateway.endpoint.rest.bind-address": "127.0.0.1",
               "sql-gateway.endpoint.rest.port": str(settings.port)}
    cmd = [str(flink_cluster.flink_home() / "bin" / "sql-gateway.sh"), "start-foreground",
           *(f"-D{key}={value}" for key, value in options.items())]
    log(f"sql gateway: starting, REST {settings.url}")
    procs.spawn(cmd, sub(flink_cluster.home(), "log") / "sql-gateway.out", _pid_file(), env=env)
    procs.wait_until(lambda: _info(settings) is not None, 90, "the SQL Gateway's REST API")
    log(f"sql gateway: ready, REST {settings.url} (sessions load the catalog: vigil sql --print-init)")


def stop(log=print) -> None:
    log("sql gateway: stopped" if procs.stop(_pid_file()) else "sql gateway: not running")


def status(settings: GatewaySettings = GatewaySettings()) -> str:
    info = _info(settings) if procs.is_alive(procs.read_pid(_pid_file())) else None
    if info is None:
        return "sql gateway: stopped"
    return f"sql gateway: running, REST {settings.url} (Flink {info.get('version')})"


# --- a REST client ------------------------------------------------------------------------------

class Session:
    """One SQL Gateway session (REST API v2). `run` submits a statement and returns its rows; a
    query that never ends (a streaming SELECT without LIMIT) is read up to `max_rows`, then closed."""

    def __init__(self, url: str, handle: str):
        self.url, self.handle = url, handle

    @staticmethod
    def open(url: str | None = None, init: bool = True, properties: dict | None = None) -> "Session":
        url = url or GatewaySettings().url
        handle = _request("POST", f"{url}/v1/sessions", {"properties": properties or {}})["sessionHandle"]
        session = Session(url, handle)
        if init:
            from vigil import sql_cli
            for statement in sql_cli.init_statements():
                session.run(statement)
        return session

    def run(self, statement: str, max_rows: int | None = None, timeout_s: float = 120) -> list[list]:
        base = f"{self.url}/v2/sessions/{self.handle}"
        operation = _request("POST", f"{base}/statements", {"statement": statement})["operationHandle"]
        rows: list[list] = []
        next_uri = f"/v2/sessions/{self.handle}/operations/{operation}/result/0?rowFormat=JSON"
        deadline = time.monotonic() + timeout_s
        try:
            while next_uri and time.monotonic() < deadline:
                page = _request("GET", self.url + next_uri)
                if page.get("resultType") == "NOT_READY":
                    time.sleep(0.2)
                    continue
                rows += [item["fields"] for item in page.get("results", {}).get("data", [])
                         if item.get("kind", "INSERT") in ("INSERT", "UPDATE_AFTER")]
                if max_rows is not None and len(rows) >= max_rows:
                    return rows[:max_rows]
                next_uri = page.get("nextResultUri")
                if page.get("resultType") == "PAYLOAD" and not page.get("results", {}).get("data"):
                    time.sleep(0.2)
            if next_uri:
                raise TimeoutError(f"{len(rows)} rows after {timeout_s:.0f}s: {statement[:200]}")
            return rows
        finally:
            try:
                _request("DELETE", f"{base}/operations/{operation}/close")
            except OSError:
                pass

    def close(self) -> None:
        _request("DELETE", f"{self.url}/v1/sessions/{self.handle}")

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GatewayError(RuntimeError):
    pass


def _request(method: str, url: str, body: dict | None = None, timeout: float = 60):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise GatewayError(f"{method} {url}: {error.code} {error.read().decode(errors='replace')[-3000:]}") from None
