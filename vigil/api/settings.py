"""The API's settings, from the environment, with documented defaults.

VIGIL_API_PORT (8090)       port on 127.0.0.1 (the API never listens on another address)
VIGIL_API_DATABASE (vigil)  database to serve (tests and benchmarks use their own)
VIGIL_API_POOL_MAX (16)     connections to PostgreSQL at most, per worker (role vigil_api allows 64)
VIGIL_API_WORKERS (1)       worker processes (one event loop each; more cores, more workers)
VIGIL_PG_PORT (5433)        PostgreSQL, as everywhere (vigil/serving/postgres.py)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vigil.serving import credentials, postgres

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ApiSettings:
    port: int = field(default_factory=lambda: int(os.environ.get("VIGIL_API_PORT", "8090")))
    database: str = field(default_factory=lambda: os.environ.get("VIGIL_API_DATABASE", postgres.DATABASE))
    pool_min: int = 2
    pool_max: int = field(default_factory=lambda: int(os.environ.get("VIGIL_API_POOL_MAX", "16")))
    workers: int = field(default_factory=lambda: int(os.environ.get("VIGIL_API_WORKERS", "1")))
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def conninfo(self) -> str:
        return postgres.dsn(credentials.API, self.database)
