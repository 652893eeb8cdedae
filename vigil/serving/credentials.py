"""Passwords of the local PostgreSQL's login roles, generated once into a 0600 file.

The file lives beside the data folder (`<state>/postgres/credentials.json`), never in git. It is
written atomically with its final mode already set, so no reader ever sees it world-readable or
half written. The roles themselves are created by the migrations; `postgres.ensure_running()`
sets these passwords on them at every start, so the file and the server always agree.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

# The three login roles (ADR 0010): the bootstrap superuser that runs migrations, the role
# Flink's JDBC sink writes as, and the role the HTTP API reads as (no BYPASSRLS).
ADMIN, WRITER, API = "vigil_admin", "vigil_writer", "vigil_api"
ROLES = (ADMIN, WRITER, API)


def generate() -> dict[str, str]:
    # 32 bytes of hex: no character that needs quoting in a conninfo string, a JDBC URL or SQL.
    return {role: secrets.token_hex(32) for role in ROLES}


def read(path: Path) -> dict[str, str] | None:
    """The stored passwords, or None when there is no file yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or any(not isinstance(data.get(r), str) for r in ROLES):
        raise RuntimeError(f"{path} is not a credentials file of this project (roles {', '.join(ROLES)})")
    return {role: data[role] for role in ROLES}


def write(path: Path, passwords: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out, indent=1)
    os.replace(tmp, path)


def ensure(path: Path) -> tuple[dict[str, str], bool]:
    """The passwords, generating and storing them on first use; True when they are new."""
    existing = read(path)
    if existing is not None:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)   # someone loosened it: passwords are for this user only
        return existing, False
    passwords = generate()
    write(path, passwords)
    return passwords, True
