"""The API's database access: a pool of `vigil_api` connections, and one way to run a query,
inside a transaction bound to the caller's tenant.

Per request, in one round trip (pipeline mode): BEGIN; SELECT serving.authenticate(key) (which
sets the transaction's signed tenant context, V002); the documented query; COMMIT. The context ends with the transaction, so
a pooled connection never carries a tenant into the next request, and the API process never
decides which tenant a query sees: the database does, from the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from vigil.api.params import ApiError

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="vigil"'}


def unauthorized(message: str = "invalid or revoked API key") -> ApiError:
    return ApiError(401, "unauthorized", message, headers=UNAUTHORIZED_HEADERS)


@dataclass
class Result:
    tenant_id: str
    rows: list[dict]


class Database:
    def __init__(self, conninfo: str, min_size: int = 2, max_size: int = 16, timeout: float = 5.0):
        async def configure(conn: psycopg.AsyncConnection) -> None:
            await conn.set_autocommit(True)     # transactions are explicit, one per request

        self.pool = AsyncConnectionPool(conninfo, min_size=min_size, max_size=max_size, timeout=timeout,
                                        kwargs={"row_factory": dict_row}, configure=configure, open=False,
                                        name="vigil-api")

    async def open(self) -> None:
        # Not waiting for connections: the API starts (and /health says why) while the database is down.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, api_key: str, query, params: dict) -> Result:
        """`query` (psycopg.sql.Composed from vigil.api.queries) for the tenant of `api_key`."""
        # Connections broken under us (PostgreSQL restarted): the failed one leaves the pool,
        # the idle ones are checked (the broken ones replaced), and the request, which only
        # reads, runs again once.
        for attempt in (1, 2):
            try:
                return await self._run_once(api_key, query, params)
            except ApiError:
                raise
            except psycopg.errors.QueryCanceled:
                raise ApiError(503, "query_timeout",
                               "the query took too long; try a shorter range or a coarser grain") from None
            except PoolTimeout:
                break
            except psycopg.OperationalError:
                if attempt == 2:
                    break
                await self.pool.check()
        raise ApiError(503, "database_unavailable", "the analytics database is not reachable")

    async def _run_once(self, api_key: str, query, params: dict) -> Result:
        async with self.pool.connection() as conn:
            # Pipeline mode: BEGIN, authenticate, the query and COMMIT leave in one round trip
            # (four without it). When the key is refused, the query after it is never run: the
            # server skips the rest of a failed transaction and psycopg raises the first error.
            try:
                async with conn.pipeline(), conn.transaction():
                    tenant = await conn.execute("SELECT serving.authenticate(%s) AS tenant_id", [api_key])
                    rows = await conn.execute(query, params)
            except psycopg.errors.InvalidPassword:
                raise unauthorized() from None
            return Result((await tenant.fetchone())["tenant_id"], await rows.fetchall())

    async def ping(self) -> bool:
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            return False
