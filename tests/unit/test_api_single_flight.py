"""vigil.api.single_flight: identical concurrent calls share one run; nothing outlives the run."""

from __future__ import annotations

import asyncio

import pytest

from vigil.api.single_flight import SingleFlight


def _counting(result="rows", delay=0.05, error: Exception | None = None):
    calls = []

    async def start():
        calls.append(1)
        await asyncio.sleep(delay)
        if error:
            raise error
        return result
    return calls, start


def test_identical_concurrent_calls_share_one_run_and_the_next_call_runs_again():
    async def scenario():
        flights = SingleFlight()
        calls, start = _counting()
        answers = await asyncio.gather(*(flights.run(("k", "q", 1), start) for _ in range(32)))
        assert answers == ["rows"] * 32 and len(calls) == 1
        assert flights.in_flight() == 0            # nothing kept: not a cache
        assert await flights.run(("k", "q", 1), start) == "rows" and len(calls) == 2
    asyncio.run(scenario())


def test_different_keys_or_parameters_run_separately():
    async def scenario():
        flights = SingleFlight()
        calls, start = _counting()
        await asyncio.gather(flights.run(("key-a", "q", 1), start), flights.run(("key-b", "q", 1), start),
                             flights.run(("key-a", "q", 2), start))
        assert len(calls) == 3
    asyncio.run(scenario())


def test_an_error_reaches_every_waiter_and_is_not_kept():
    async def scenario():
        flights = SingleFlight()
        calls, start = _counting(error=ValueError("refused"))
        results = await asyncio.gather(*(flights.run("k", start) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results) and len(calls) == 1
        ok_calls, ok = _counting()
        assert await flights.run("k", ok) == "rows" and len(ok_calls) == 1
    asyncio.run(scenario())


def test_a_waiter_that_goes_away_does_not_cancel_the_run_for_the_others():
    async def scenario():
        flights = SingleFlight()
        calls, start = _counting(delay=0.1)
        first = asyncio.ensure_future(flights.run("k", start))
        second = asyncio.ensure_future(flights.run("k", start))
        await asyncio.sleep(0.02)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == "rows" and len(calls) == 1
    asyncio.run(scenario())


def test_a_failed_run_whose_waiters_all_left_logs_nothing_unretrieved(caplog):
    async def scenario():
        flights = SingleFlight()
        _, start = _counting(delay=0.05, error=RuntimeError("db down"))
        waiter = asyncio.ensure_future(flights.run("k", start))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.sleep(0.1)
        assert flights.in_flight() == 0
    asyncio.run(scenario())
    assert "never retrieved" not in caplog.text
