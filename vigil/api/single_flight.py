"""Identical requests in flight at the same time share one database query.

Many dashboards of one tenant ask the same questions at the same moments (every panel refreshes
every few seconds); on a small serving machine the heavy ones (rankings over a day of hour rows)
would each cost the database the same work. A request that arrives while an identical one (same
API key, query and parameters) is running waits for that query's answer instead of starting its
own. No answer is older than the request by more than one query's run time, and nothing is kept
after the query ends: this is not a cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future] = {}

    def in_flight(self) -> int:
        return len(self._flights)

    async def run(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> T:
        """`start()`'s result, or the result of the identical call already running under `key`.
        A caller that goes away (client disconnected, request cancelled) does not cancel the
        query for the others."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(start())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: Hashable, flight: asyncio.Future) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here: every waiter may have gone before it failed
