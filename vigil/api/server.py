"""Running the API: in the foreground (`vigil api`), or in the background with a pid file under
`<state>/api/` (`vigil api --background | --stop | --status`), for the demo and benchmarks.
Only the process recorded in the pid file is ever stopped.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from vigil import procs
from vigil.api.settings import ApiSettings
from vigil.paths import state_dir, sub


def _home():
    return sub(state_dir(), "api")


def _pid_file():
    return _home() / "api.pid"


def log_file():
    return _home() / "api.log"


def run(settings: ApiSettings, access_log: bool = False) -> None:
    import uvicorn

    from vigil.api.app import create_app

    # One event loop per worker process; the pool bounds each worker's connections. uvicorn
    # picks uvloop and httptools (in the lock): less API CPU per request (docs/benchmarks.md,
    # "Analytics API under load"). Workers are separate processes that build the app from the
    # environment, so the settings travel there.
    options = dict(host=settings.host, port=settings.port, access_log=access_log, log_level="info",
                   **transport_options())
    if settings.workers <= 1:
        uvicorn.run(create_app(settings), **options)
        return
    os.environ.update(VIGIL_API_DATABASE=settings.database, VIGIL_API_POOL_MAX=str(settings.pool_max),
                      VIGIL_API_PORT=str(settings.port))
    uvicorn.run("vigil.api.app:create_app", factory=True, workers=settings.workers, **options)


def transport_options() -> dict:
    """uvicorn options every way of serving the API shares (tests run the app with them too):
    the head deadline and size cap of vigil/api/transport_guard.py, a bound on connections."""
    from vigil.api.transport_guard import MAX_CONNECTIONS_PER_WORKER, GuardedHttpToolsProtocol

    return dict(http=GuardedHttpToolsProtocol, limit_concurrency=MAX_CONNECTIONS_PER_WORKER,
                server_header=False, proxy_headers=False)


def answering(settings: ApiSettings) -> bool:
    """The API answers HTTP (/health: 200, or 503 while the database is down)."""
    try:
        with urllib.request.urlopen(f"{settings.url}/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def is_running(settings: ApiSettings) -> bool:
    return procs.is_alive(procs.read_pid(_pid_file())) and answering(settings)


def start_background(settings: ApiSettings, log=print, timeout: float = 30) -> None:
    if is_running(settings):
        log(f"api: already running on {settings.url}")
        return
    if procs.port_open(settings.host, settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start;"
                           " set VIGIL_API_PORT to use another port")
    cmd = [sys.executable, "-m", "vigil.cli", "api", "--port", str(settings.port), "--database", settings.database,
           "--workers", str(settings.workers)]
    pid = procs.spawn(cmd, log_file(), _pid_file())

    def ready() -> bool:
        if not procs.is_alive(pid):
            raise RuntimeError(f"the API exited during start-up; see {log_file()}:\n"
                               + log_file().read_text(errors="replace")[-1500:])
        return answering(settings)

    procs.wait_until(ready, timeout, "the API to answer")
    log(f"api: running on {settings.url} (pid {pid}, log {log_file()})")


def stop_background(log=print) -> None:
    log("api: stopped" if procs.stop(_pid_file(), timeout=15) else "api: not running")


def status(settings: ApiSettings) -> str:
    if is_running(settings):
        return f"api: running on {settings.url} (pid {procs.read_pid(_pid_file())})"
    return "api: stopped"
