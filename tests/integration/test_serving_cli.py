"""`vigil serving ...` against a scratch database of its own (a retention pass must not touch
other tests' rows): a key is printed once and works, is listed by id only, and stops working
when revoked; retention is shown and changed; bad input gets one line and exit code 1."""

from __future__ import annotations

import psycopg
import pytest

from vigil import cli
from vigil.serving import credentials, provision
from vigil.serving import postgres as pg


@pytest.fixture(scope="module")
def database(postgres_server):
    with provision.scratch_database("vigil_test_cli", postgres_server) as name:
        yield name


def vigil(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def authenticates(database: str, key: str) -> str | None:
    with psycopg.connect(pg.dsn(credentials.API, database), autocommit=True) as conn:
        try:
            with conn.transaction():
                return conn.execute("SELECT serving.authenticate(%s)", [key]).fetchone()[0]
        except psycopg.errors.InvalidPassword:
            return None


def test_keys_are_created_listed_and_revoked(database, capsys):
    code, out, err = vigil(capsys, "serving", "--database", database, "keys", "create", "--tenant", "tcli", "--label", "ci")
    key = out.strip()
    assert code == 0 and key.startswith("vgl_") and "shown once" in err
    assert authenticates(database, key) == "tcli"
    key_id = key.split("_")[1]
    code, out, _ = vigil(capsys, "serving", "--database", database, "keys", "list", "--tenant", "tcli")
    assert code == 0 and key_id in out and key not in out and "ci" in out
    assert vigil(capsys, "serving", "--database", database, "keys", "revoke", key_id)[0] == 0
    assert authenticates(database, key) is None
    code, _, err = vigil(capsys, "serving", "--database", database, "keys", "revoke", key_id)
    assert code == 1 and "no live key" in err


@pytest.mark.parametrize("tenant", ["", "t 1", "t1'; DROP TABLE x; --", "x" * 200])
def test_a_bad_tenant_id_is_refused_in_one_line(database, capsys, tenant):
    code, out, err = vigil(capsys, "serving", "--database", database, "keys", "create", "--tenant", tenant)
    assert code == 1 and out == "" and err.count("\n") == 1 and "tenant id" in err


def test_retention_is_shown_and_changed(database, capsys):
    code, out, _ = vigil(capsys, "serving", "--database", database, "retention", "--set", "quality_minute=9")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("analytics.quality_minute "))
    assert line.split()[-1] == "9"
    code, _, err = vigil(capsys, "serving", "--database", database, "retention", "--set", "sales_minute=forever")
    assert code == 1 and "TABLE=DAYS" in err
