"""The PostgreSQL process as `vigil infra` runs it, on a state folder and port of its own (the
session's server is left alone): initdb on first start, 127.0.0.1 only, passwords in a 0600
file, idempotent start, stop by pid, data kept across restarts, a lost credentials file
recovered without losing data, and a port taken by someone else refused."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import uuid

import psycopg
import pytest

from vigil.paths import PROJECT_ROOT
from vigil.serving import credentials, provision
from vigil.serving import postgres as pg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_server(monkeypatch):
    # Under the checkout, not /tmp: pytest's temporary folders are private to root, and the
    # server runs as the postgres OS user.
    state = PROJECT_ROOT / ".vigil" / f"test-pg-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("VIGIL_STATE", str(state))
    monkeypatch.setenv("VIGIL_PG_PORT", str(free_port()))
    settings = pg.PgSettings()
    yield settings
    pg.stop(log=lambda *_: None)
    shutil.rmtree(state, ignore_errors=True)


def test_lifecycle_start_stop_restart_and_lost_credentials(own_server):
    settings, lines = own_server, []
    pg.start(settings, log=lines.append)
    assert any("initdb" in line for line in lines) and pg.is_running(settings)
    assert stat.S_IMODE(pg.credentials_file().stat().st_mode) == 0o600
    assert stat.S_IMODE((pg.home() / "logs" / "postgresql.log").stat().st_mode) == 0o600
    first_pid = pg.pid()
    # Idempotent: a second start finds it running.
    pg.start(settings, log=lines.append)
    assert pg.pid() == first_pid and "already running" in lines[-1]
    with psycopg.connect(pg.dsn(credentials.ADMIN, "postgres", settings)) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == ""
        assert conn.execute("SHOW log_parameter_max_length").fetchone()[0] == "0"     # keys never logged
        conn.execute("CREATE TABLE kept (x int)")
        conn.commit()
    assert "running" in pg.status(settings) and "healthy" in pg.status(settings)

    pg.stop(log=lines.append)
    assert lines[-1] == "postgres: stopped" and pg.pid() is None and pg.status(settings) == "postgres: stopped"
    assert not os.path.exists(f"/proc/{first_pid}/cmdline") or b"postgres" not in open(f"/proc/{first_pid}/cmdline", "rb").read()

    # The passwords file lost: new passwords, same data.
    pg.credentials_file().unlink()
    pg.start(settings, log=lines.append)
    assert any("credentials file was missing" in line for line in lines)
    with psycopg.connect(pg.dsn(credentials.ADMIN, "postgres", settings)) as conn:
        assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone()[0]
    # Roles get the new passwords when the database is prepared.
    provision.prepare_database("vigil", settings, log=lambda *_: None)
    with psycopg.connect(pg.dsn(credentials.WRITER, "vigil", settings)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "vigil_writer"


def test_a_port_taken_by_another_process_is_refused(own_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", own_server.port))
        taken.listen()
        with pytest.raises(RuntimeError, match="taken by a process this project did not start"):
            pg.start(own_server, log=lambda *_: None)
    assert pg.pid() is None
