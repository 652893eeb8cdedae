"""Partitions and retention of the analytics tables (the SQL is in V003).

`maintain()` creates the partitions from each table's retention cutoff to a few periods ahead
and drops expired ones, and deletes expired rows of the unpartitioned fraud and feature
mirrors. `vigil infra up` runs it; in production a scheduler runs `vigil serving retention`
(hourly is plenty: minute tables keep three days of partitions ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Change:
    table: str
    action: str        # created | dropped | deleted N expired rows
    partition: str


@dataclass(frozen=True)
class Policy:
    table: str
    unit: str | None         # day | month | year for partitioned tables, None for the mirrors
    retention_days: float
    time_column: str


def maintain(conninfo: str, at: datetime | None = None) -> list[Change]:
    """One maintenance pass, as the admin; `at` (UTC, naive) pretends it is another time (tests)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Two transactions: a lock timeout on one table's partitions keeps the mirrors' expiry.
        rows = conn.execute("SELECT * FROM serving_private.maintain_partitions("
                            "coalesce(%s::timestamp, now() AT TIME ZONE 'UTC'))", [at]).fetchall()
        changes = [Change(*row) for row in rows]
        expired = conn.execute("SELECT * FROM serving_private.expire_rows("
                               "coalesce(%s::timestamp, now() AT TIME ZONE 'UTC'))", [at]).fetchall()
        changes += [Change(table, f"deleted {n} expired rows", table) for table, n in expired if n]
    return changes


def policies(conninfo: str) -> list[Policy]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name, unit, extract(epoch FROM retention) / 86400, 'window_start'"
            "  FROM serving_private.partitioned_tables"
            " UNION ALL SELECT table_name, NULL, extract(epoch FROM retention) / 86400, time_column"
            "  FROM serving_private.expiring_tables ORDER BY 1").fetchall()
    return [Policy(t, u, float(d), c) for t, u, d, c in rows]


def set_retention(conninfo: str, table: str, days: float) -> None:
    """Keep `table`'s rows at least `days` days (the next maintenance pass applies it)."""
    import psycopg

    if not 0 < days <= 36600:
        raise ValueError(f"{table}: retention must be more than 0 and at most 36600 days, not {days}")
    qualified = table if "." in table else f"analytics.{table}"
    with psycopg.connect(conninfo) as conn:
        updated = 0
        for config in ("serving_private.partitioned_tables", "serving_private.expiring_tables"):
            updated += conn.execute(f"UPDATE {config} SET retention = make_interval(secs => %s)"  # noqa: S608 - fixed names
                                    " WHERE table_name = %s", [days * 86400, qualified]).rowcount
        if not updated:
            known = [p.table for p in policies(conninfo)]
            raise ValueError(f"no retention for {table!r}; tables: {', '.join(known)}")
