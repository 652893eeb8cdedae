"""The local PostgreSQL 15 that serves analytics: installed, initialised, started and stopped by
the project, like its Kafka broker (vigil/kafka_broker.py).

- Binaries: Debian's `postgresql-15` (`/usr/lib/postgresql/15/bin`, or `VIGIL_PG_BIN`); installed
  with apt-get when missing and we are root.
- Data: `<state>/postgres/data` (initdb on first use, owned by the `postgres` OS user when we run
  as root: the server refuses to run as root), log in `<state>/postgres/logs/`, our pid file in
  `<state>/postgres/postgres.pid`, passwords in `<state>/postgres/credentials.json` (0600).
- Network: TCP on 127.0.0.1 only, port `VIGIL_PG_PORT` (5433: 5432 is left to a system cluster),
  no Unix socket, password (SCRAM) authentication for every role.
- `ensure_running()` is idempotent: start if needed, create the database, apply migrations, set
  the roles' passwords, create this period's partitions and drop expired ones.
- `stop()` signals only the postmaster whose pid we recorded (and only if it still runs on our
  data folder): fast shutdown (SIGINT), immediate (SIGQUIT) if it hangs.

Other modules get connection strings from `dsn(role)` and Flink gets `jdbc_url()` and
`writer_credentials()`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vigil import procs
from vigil.paths import state_dir, sub
from vigil.serving import credentials

DATABASE = "vigil"
PG_MAJOR = "15"
OS_USER = "postgres"   # created by Debian's postgresql-common; the server's owner when we are root

# Server settings, passed on the command line so `ps` shows them and a port change needs no
# edit of a file in the data folder. Sized for a 2-core, shared machine: the API's queries are
# small index scans, so memory goes to shared buffers, not to big sorts.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",          # TCP only: one way in, password-checked
    "max_connections": "100",
    "shared_buffers": "256MB",
    "effective_cache_size": "2GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "random_page_cost": "1.1",              # SSD / page cache
    "jit": "off",                           # JIT compiling costs 10s of ms: more than our queries
    "password_encryption": "scram-sha-256",
    "log_min_duration_statement": "1000",   # log statements slower than 1 s ...
    "log_parameter_max_length": "0",        # ... never their bind values (an API key is one)
    "log_parameter_max_length_on_error": "0",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_timezone": "UTC",
    "timezone": "UTC",
    "synchronous_commit": "on",
}
HBA = """# Written by vigil/serving/postgres.py at every start: TCP from 127.0.0.1, passwords only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   scram-sha-256
"""


@dataclass(frozen=True)
class PgSettings:
    port: int = field(default_factory=lambda: int(os.environ.get("VIGIL_PG_PORT", "5433")))
    host: str = "127.0.0.1"
    database: str = DATABASE
    bin_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("VIGIL_PG_BIN", f"/usr/lib/postgresql/{PG_MAJOR}/bin")))


def home() -> Path:
    return sub(state_dir(), "postgres")


def data_dir() -> Path:
    """`<state>/postgres/data`, unless the server's OS user cannot reach it (we are root and the
    checkout lies in a folder only root may enter, as a mktemp -d folder is): then a folder of its
    own under /var/lib/vigil named after the state folder, so each checkout keeps its own data."""
    preferred = home() / "data"
    owner = _server_user()
    if owner is None or _reachable_by(preferred.parent, *owner):
        return preferred
    key = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("VIGIL_PG_FALLBACK_ROOT", "/var/lib/vigil/postgres")) / key
    folder.mkdir(parents=True, exist_ok=True)
    for level in (folder, *folder.parents):
        if level == Path("/"):
            break
        os.chmod(level, os.stat(level).st_mode | 0o111)   # traversable, not listable, by the server
    return folder / "data"


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Every folder from / to `path` can be traversed by uid/gid (execute permission)."""
    for level in (path, *path.parents):
        try:
            st = os.stat(level)
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _pid_file() -> Path:
    return home() / "postgres.pid"


def _log_file() -> Path:
    # Private: a log line can quote a statement (never its values, see SERVER_SETTINGS).
    logs = sub(home(), "logs")
    os.chmod(logs, 0o700)
    path = logs / "postgresql.log"
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    return path


def credentials_file() -> Path:
    return home() / "credentials.json"


# ---------------------------------------------------------------- connection strings

def _passwords() -> dict[str, str]:
    stored = credentials.read(credentials_file())
    if stored is None:
        raise RuntimeError("PostgreSQL has no credentials yet: run `vigil infra up` first")
    return stored


def dsn(role: str = credentials.ADMIN, database: str | None = None,
        settings: PgSettings | None = None) -> str:
    """A libpq connection string for psycopg, as `role` (vigil_admin, vigil_writer, vigil_api)."""
    from psycopg.conninfo import make_conninfo

    settings = settings or PgSettings()
    if role not in credentials.ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(credentials.ROLES)}")
    return make_conninfo(host=settings.host, port=settings.port, dbname=database or settings.database,
                         user=role, password=_passwords()[role], connect_timeout=5,
                         application_name=f"vigil-{role.removeprefix('vigil_')}", sslmode="disable")


def jdbc_url(database: str | None = None, settings: PgSettings | None = None) -> str:
    """What Flink's JDBC connector connects to. stringtype=unspecified lets PostgreSQL cast the
    strings Flink sends (e.g. entity features as JSON text into jsonb)."""
    settings = settings or PgSettings()
    return (f"jdbc:postgresql://{settings.host}:{settings.port}/{database or settings.database}"
            "?stringtype=unspecified")


def writer_credentials() -> tuple[str, str]:
    """(user, password) of the role Flink's JDBC sink writes as."""
    return credentials.WRITER, _passwords()[credentials.WRITER]


# ---------------------------------------------------------------- install, initdb

def _is_root() -> bool:
    return os.geteuid() == 0


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run as ourselves (we are not root)."""
    if not _is_root():
        return None
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError:
        raise RuntimeError(f"the OS user {OS_USER!r} is missing (Debian's postgresql-common creates it);"
                           " reinstall: apt-get install --reinstall postgresql-common") from None
    return entry.pw_uid, entry.pw_gid


def ensure_installed(settings: PgSettings, log=print) -> None:
    if (settings.bin_dir / "postgres").exists() and (settings.bin_dir / "initdb").exists():
        return
    if not _is_root():
        raise RuntimeError(f"PostgreSQL {PG_MAJOR} is not installed ({settings.bin_dir} has no server):"
                           f" sudo apt-get install -y postgresql-{PG_MAJOR}, or set VIGIL_PG_BIN")
    log(f"postgres: installing PostgreSQL {PG_MAJOR} (apt-get install postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"apt-get install postgresql failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
    if not (settings.bin_dir / "postgres").exists():
        raise RuntimeError(f"apt-get installed PostgreSQL, but not under {settings.bin_dir}; set VIGIL_PG_BIN")


def _run_as_server_user(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    owner = _server_user()
    kwargs = {} if owner is None else {"user": owner[0], "group": owner[1], "extra_groups": []}
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd="/", **kwargs)


def _give_to_server_user(path: Path) -> None:
    owner = _server_user()
    if owner is not None:
        os.chown(path, *owner)


def _initdb(settings: PgSettings, admin_password: str, log=print) -> None:
    data = data_dir()
    if (data / "PG_VERSION").exists():
        return
    shutil.rmtree(data, ignore_errors=True)   # a half-made folder from an interrupted initdb
    data.mkdir(mode=0o700)
    _give_to_server_user(data)
    log(f"postgres: initdb {data}")
    # initdb reads the password from a file: one only the server's user can read, removed
    # right after (never the command line, which any local user can see in ps).
    fd, pwfile = tempfile.mkstemp(prefix=".initdb-", dir=data.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(admin_password + "\n")
        _give_to_server_user(Path(pwfile))
        result = _run_as_server_user(
            [str(settings.bin_dir / "initdb"), "-D", str(data), "-U", credentials.ADMIN,
             f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
             "--data-checksums"])
    finally:
        os.unlink(pwfile)
    if result.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")


def _reset_admin_password(settings: PgSettings, admin_password: str) -> None:
    """The credentials file is gone but the data is not: set a new admin password in single-user
    mode (server stopped), so a lost file costs a restart, not the data."""
    from psycopg import sql

    statement = sql.SQL("ALTER ROLE {} PASSWORD {};\n").format(
        sql.Identifier(credentials.ADMIN), sql.Literal(admin_password)).as_string(None)
    result = _run_as_server_user([str(settings.bin_dir / "postgres"), "--single", "-D", str(data_dir()),
                                  "-j", "postgres"], stdin=statement)
    if result.returncode != 0:
        raise RuntimeError(f"could not reset the admin password:\n{result.stderr[-1500:]}")


def _write_hba() -> None:
    hba = data_dir() / "pg_hba.conf"
    hba.write_text(HBA)
    _give_to_server_user(hba)
    os.chmod(hba, 0o600)


# ---------------------------------------------------------------- process

def _our_postmaster(pid: int | None) -> bool:
    """The recorded pid is alive and is a postgres running on our data folder (not a reused pid)."""
    if not procs.is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"postgres") and str(data_dir()).encode() in cmdline


def pid() -> int | None:
    found = procs.read_pid(_pid_file())
    return found if _our_postmaster(found) else None


def healthy(settings: PgSettings | None = None, database: str = "postgres") -> bool:
    """The server accepts a password login as the admin and answers a query."""
    import psycopg

    settings = settings or PgSettings()
    try:
        with psycopg.connect(dsn(credentials.ADMIN, database, settings), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means "not healthy (yet)"
        return False


def is_running(settings: PgSettings | None = None) -> bool:
    settings = settings or PgSettings()
    return pid() is not None and procs.port_open(settings.host, settings.port)


def _server_command(settings: PgSettings) -> list[str]:
    cmd = [str(settings.bin_dir / "postgres"), "-D", str(data_dir()), "-p", str(settings.port)]
    for name, value in SERVER_SETTINGS.items():
        cmd += ["-c", f"{name}={value}"]
    return cmd


def _spawn(settings: PgSettings) -> int:
    owner = _server_user()
    kwargs = {} if owner is None else {"user": owner[0], "group": owner[1], "extra_groups": []}
    with open(_log_file(), "ab") as log_out:
        proc = subprocess.Popen(_server_command(settings), stdout=log_out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd="/", start_new_session=True,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, **kwargs)
    procs.record_pid(_pid_file(), proc.pid)
    return proc.pid


def _start_lock():
    """One process at a time starts or stops the server (parallel test workers, two shells)."""
    return procs.exclusive(home() / "start.lock")


def start(settings: PgSettings | None = None, log=print, timeout: float = 60) -> None:
    """Install if missing, initdb on first use, start the server and wait until it answers."""
    with _start_lock():
        _start(settings or PgSettings(), log, timeout)


def _start(settings: PgSettings, log, timeout: float) -> None:
    if is_running(settings):
        if not healthy(settings):
            raise RuntimeError(f"PostgreSQL (pid {pid()}) runs but refuses our admin login; "
                               f"see {_log_file()}")
        log(f"postgres: already running on {settings.host}:{settings.port}")
        return
    if procs.port_open(settings.host, settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start;"
                           " set VIGIL_PG_PORT to use another port")
    ensure_installed(settings, log)
    passwords, new = credentials.ensure(credentials_file())
    if new and (data_dir() / "PG_VERSION").exists():
        log("postgres: credentials file was missing; new passwords set on the existing data")
        _reset_admin_password(settings, passwords[credentials.ADMIN])
    _initdb(settings, passwords[credentials.ADMIN], log)
    _write_hba()
    log(f"postgres: starting on {settings.host}:{settings.port} (data {data_dir()}, log {_log_file()})")
    server_pid = _spawn(settings)

    def ready() -> bool:
        if not procs.is_alive(server_pid):
            tail = _log_file().read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL exited during start-up; last log lines:\n{tail}")
        return procs.port_open(settings.host, settings.port) and healthy(settings)

    try:
        procs.wait_until(ready, timeout, "PostgreSQL to accept connections")
    except TimeoutError:
        tail = _log_file().read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not become ready; last log lines:\n{tail}") from None
    log(f"postgres: ready (pid {server_pid})")


def ensure_running(settings: PgSettings | None = None, log=print) -> None:
    """Start (if needed) and bring the `vigil` database to the current schema: migrations,
    role passwords, partitions. Safe to call any number of times, from several processes."""
    from vigil.serving import provision

    settings = settings or PgSettings()
    start(settings, log)
    provision.prepare_database(settings.database, settings, log)


def stop(log=print, timeout: float = 60) -> None:
    """Fast shutdown of the server we started (open transactions rolled back, clients
    disconnected); an immediate shutdown if it has not exited after `timeout` seconds."""
    with _start_lock():
        _stop(log, timeout)


def _stop(log, timeout: float) -> None:
    server_pid = pid()
    if server_pid is None:
        _pid_file().unlink(missing_ok=True)
        log("postgres: not running")
        return
    os.kill(server_pid, signal.SIGINT)
    try:
        procs.wait_until(lambda: not procs.is_alive(server_pid), timeout, f"PostgreSQL (pid {server_pid}) to stop")
    except TimeoutError:
        os.kill(server_pid, signal.SIGQUIT)
        procs.wait_until(lambda: not procs.is_alive(server_pid), 15, f"PostgreSQL (pid {server_pid}) to quit")
    _pid_file().unlink(missing_ok=True)
    log("postgres: stopped")


def status(settings: PgSettings | None = None) -> str:
    settings = settings or PgSettings()
    if not is_running(settings):
        return "postgres: stopped"
    state = "healthy" if healthy(settings) else "NOT answering queries"
    return (f"postgres: running on {settings.host}:{settings.port} (pid {pid()}), {state}; "
            f"database {settings.database}, data {data_dir()}")


def wipe() -> None:
    """Delete the server's data and passwords (`vigil infra down --wipe`); it must be stopped."""
    if pid() is not None:
        raise RuntimeError("stop PostgreSQL before wiping its data")
    shutil.rmtree(data_dir(), ignore_errors=True)
    credentials_file().unlink(missing_ok=True)

