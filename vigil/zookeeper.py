"""A single-node Apache ZooKeeper 3.9 server for Flink JobManager high availability in local drills.

Like the Kafka broker (vigil.kafka_broker): jars from Maven Central (jar set `zookeeper` of
vigil.jars), one JVM started in the background and stopped by its recorded pid; data, the rendered
`zoo.cfg`, logs and the pid file live under `<state>/zookeeper/`, and the data folder survives
restarts (Flink keeps its leader and job pointers there). Only these functions are offered:
nothing starts ZooKeeper by itself (`vigil infra up` does not).

- Client port: VIGIL_ZOOKEEPER_PORT (2181), bound to 127.0.0.1 only (clientPortAddress).
- The AdminServer (an HTTP server on 8080 by default) is switched off: its Jetty is not in the jar
  set, and 8080 is a port other local tools want.
- Four-letter words: only `ruok`, `srvr` and `mntr` (health, version and mode, counters). start()
  waits until `ruok` answers `imok` and `srvr` reports a mode: `ruok` alone answers `imok` as soon
  as the client port listens, before the database is loaded, and went on answering it here after
  the server's start-up had died (a missing jar), while `srvr` said "not currently serving".

Flink 2.2.1's HA client is the ZooKeeper 3.7.2 client shaded into flink-dist (with Curator 5);
ZooKeeper servers accept older clients, and tests/integration/test_zookeeper_process.py runs
Flink's own ZooKeeperUtils against this server.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from vigil import jars, procs
from vigil.paths import state_dir, sub

MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
FOUR_LETTER_WORDS = ("ruok", "srvr", "mntr")


@dataclass(frozen=True)
class ZooKeeperSettings:
    port: int = int(os.environ.get("VIGIL_ZOOKEEPER_PORT", "2181"))
    # A single node holding a few leader and job znodes: a small heap leaves room for Kafka and Flink.
    heap: str = os.environ.get("VIGIL_ZOOKEEPER_HEAP", "256m")


def connect_string(settings: ZooKeeperSettings = ZooKeeperSettings()) -> str:
    """What Flink's `high-availability.zookeeper.quorum` takes."""
    return f"127.0.0.1:{settings.port}"


def home() -> Path:
    return sub(state_dir(), "zookeeper")


def _pid_file() -> Path:
    return home() / "zookeeper.pid"


def _log_file() -> Path:
    return sub(home(), "logs") / "stdout.log"


def pid() -> int | None:
    return procs.read_pid(_pid_file())


def four_letter_word(word: str, settings: ZooKeeperSettings = ZooKeeperSettings(),
                     timeout: float = 2.0) -> str:
    """Send one of FOUR_LETTER_WORDS to the client port and return the whole answer (the server
    closes the connection after it); '' when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", settings.port), timeout=timeout) as conn:
            conn.sendall(word.encode())
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def serving(settings: ZooKeeperSettings = ZooKeeperSettings()) -> bool:
    """The server answers `ruok` and serves clients (`srvr` names its mode: standalone here)."""
    return four_letter_word("ruok", settings) == "imok" and "Mode: " in four_letter_word("srvr", settings)


def is_running(settings: ZooKeeperSettings = ZooKeeperSettings()) -> bool:
    return procs.is_alive(pid()) and serving(settings)


def _render_config(settings: ZooKeeperSettings) -> Path:
    """zoo.cfg, written at every start so that a changed port takes effect; no `server.N` lines
    makes QuorumPeerMain run the standalone server."""
    lines = {
        "tickTime": "2000",
        "dataDir": str(sub(home(), "data")),
        "clientPort": str(settings.port),
        "clientPortAddress": "127.0.0.1",
        "maxClientCnxns": "60",
        "admin.enableServer": "false",
        "4lw.commands.whitelist": ",".join(FOUR_LETTER_WORDS),
        # Snapshots and transaction logs grow with every leader change: keep the last three,
        # purged hourly by QuorumPeerMain's cleanup task (why it is the main class, not
        # ZooKeeperServerMain).
        "autopurge.snapRetainCount": "3",
        "autopurge.purgeInterval": "1",
    }
    config = home() / "zoo.cfg"
    config.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return config


def _java_cmd(settings: ZooKeeperSettings, config: Path, log) -> list[str]:
    classpath_dir = jars.ensure("zookeeper", log)
    return [
        shutil.which("java") or "java", "-Xms64m", f"-Xmx{settings.heap}", "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        # slf4j-simple writes to stderr, which procs.spawn appends to the log file
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
        "-cp", f"{classpath_dir}/*", MAIN_CLASS, str(config),
    ]


def start(settings: ZooKeeperSettings = ZooKeeperSettings(), log=print, timeout: float = 60) -> None:
    if is_running(settings):
        log(f"zookeeper: already running on {connect_string(settings)}")
        return
    if procs.port_open("127.0.0.1", settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start;"
                           " set VIGIL_ZOOKEEPER_PORT to use another port")
    command = _java_cmd(settings, _render_config(settings), log)
    log(f"zookeeper: starting on {connect_string(settings)} (logs: {_log_file().parent})")
    started = procs.spawn(command, _log_file(), _pid_file())

    def ready() -> bool:
        if not procs.is_alive(started):
            raise RuntimeError(f"ZooKeeper exited during start-up:\n{_log_tail()}")
        return serving(settings)

    try:
        procs.wait_until(ready, timeout, "ZooKeeper to answer ruok and serve")
    except TimeoutError:
        # alive but not serving (e.g. its start-up thread died): stop what we started
        procs.stop(_pid_file(), timeout=10)
        raise RuntimeError(f"ZooKeeper did not start serving; last output:\n{_log_tail()}") from None
    log(f"zookeeper: ready (pid {started})")


def _log_tail() -> str:
    return _log_file().read_text(errors="replace")[-2000:]


def stop(log=print) -> None:
    if procs.stop(_pid_file(), timeout=30):
        log("zookeeper: stopped")
    else:
        log("zookeeper: not running")


def status(settings: ZooKeeperSettings = ZooKeeperSettings()) -> str:
    if is_running(settings):
        return f"zookeeper: running on {connect_string(settings)} (pid {pid()})"
    return "zookeeper: stopped"
