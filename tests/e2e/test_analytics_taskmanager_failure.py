"""Failure: the analytics job runs on the local standalone cluster while live traffic flows into
events.clean; its TaskManager is killed with SIGKILL and replaced; Flink restores the windows from
the last checkpoint and replays the events read since, and the JDBC sink rewrites the same rows.
After the traffic, every sales row in PostgreSQL (per tenant x merchant and per tenant, per
minute, hour and day) equals a batch recomputation of the events sent: nothing counted twice,
nothing missing; no event was refused as late. (A window still running is compared as far as it
has been emitted: its window_end is the end of the last step counted.)"""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timezone

from tests.analytics_checks import (GRAIN_MS, KEYS, TAIL_TENANT, analytics_args, analytics_topics, differences,
                                    expected_sales, produce_live, read_table, shop_events, write_tail)
from vigil import flink_cluster, procs
from vigil.paths import PROJECT_ROOT

EVENTS = 6000
SPAN_MS = 36_000          # ~170 events/s of live traffic


def test_aggregates_equal_a_recomputation_after_a_taskmanager_kill(flink, kafka, schema_registry, own_database):
    began = time.monotonic()
    names = analytics_topics(kafka)
    job_id = flink_cluster.submit_python_job(
        PROJECT_ROOT / "jobs" / "analytics.py",
        analytics_args(names, own_database, "--recipe", "sales", "--recipe", "quality"))
    try:
        flink_cluster.wait_for_checkpoints(job_id, 0, timeout_s=120)
        print(f"{time.monotonic() - began:.0f}s: job {job_id} checkpointing")
        events = shop_events(seed=21, start_ms=int(time.time() * 1000) + 1000, count=EVENTS, span_ms=SPAN_MS)
        sent: list[int] = []
        traffic = threading.Thread(target=lambda: sent.append(
            produce_live(kafka, schema_registry, names["clean"], events, seed=21)))
        traffic.start()
        time.sleep(12)
        completed = flink_cluster.checkpoint_counts(job_id)["completed"]
        assert completed > 0
        killed_at = int(time.time() * 1000)
        victim = flink_cluster.taskmanager_pids()[0]
        procs.kill_tree(victim, signal.SIGKILL)  # the TaskManager, mid-traffic, between checkpoints
        procs.wait_until(lambda: not procs.is_alive(victim), 10, "the TaskManager to die")
        flink_cluster.start_taskmanager(log=lambda *_: None)
        restored_at, checkpointed_at = flink_cluster.wait_for_recovery(job_id, killed_at, timeout_s=120)
        print(f"{time.monotonic() - began:.0f}s: killed at {killed_at}, restoring {restored_at - killed_at} ms later, "
              f"checkpointing again {checkpointed_at - killed_at} ms later")
        traffic.join(timeout=120)
        assert sent == [EVENTS]
        # Past the last step of every window the events are in (1 min), in every partition.
        write_tail(kafka, schema_registry, names["clean"], max(e["event_time"] for e in events) + 70_000)

        expected = {grain: expected_sales(events, grain) for grain in ("minute", "hour", "day")}
        not_tail = f"tenant_id <> '{TAIL_TENANT}'"

        def compare(grain: str) -> list[str]:
            written = read_table(own_database, f"sales_{grain}", KEYS["sales"], not_tail)
            problems = differences(expected[grain], written, ignore=("window_end",))
            for key, row in written.items():
                last = max((e["event_time"] for e in events if _in(e, key, grain)), default=None)
                if last is not None and row["window_end"] <= _naive(last):
                    problems.append(f"{key}: emitted up to {row['window_end']}, before its last event")
            return problems
        try:
            procs.wait_until(lambda: not any(compare(grain) for grain in expected), 90,
                             "the sales tables to equal the recomputation", interval=2)
        finally:
            for grain in expected:
                assert not compare(grain), grain
        print(f"{time.monotonic() - began:.0f}s: every row equal")
        assert flink_cluster.checkpoint_counts(job_id)["restored"] >= 1
        assert read_table(own_database, "quality_minute", KEYS["quality"], not_tail) == {}   # nothing refused as late
    finally:
        flink_cluster.cancel(job_id)


def _naive(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).replace(tzinfo=None)


def _in(event: dict, key: tuple, grain: str) -> bool:
    """Whether `event` counts in the sales row `key` (tenant, merchant or '*', window start)."""
    tenant, merchant, start = key
    at = event["event_time"]
    return (event["tenant_id"] == tenant and merchant in ("*", event["merchant_id"])
            and _naive(at - at % GRAIN_MS[grain]) == start)
