"""Validation of the API's parameters: every value is checked before any query runs, and every
problem of a request is reported at once (`ApiError` with one reason per parameter).

What passes is still only ever a bind parameter (vigil/api/queries.py); validation is there to
give clear 400s, and to refuse what cannot match any row (an id the ingest job would reject).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from vigil.api.queries import GRAINS, PRODUCT_METRICS, TENANT_WIDE

# The identifiers the ingest job accepts (udfs/validation.py): no other id can have rows.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}")
ENTITY_TYPES = ("user", "card", "device", "merchant")
INCIDENT_STATUSES = ("open", "closed")
PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Default range (ending now) and the longest range allowed, per grain: a minute series over a
# week is 10,080 rows, more than a page; ask per hour instead.
DEFAULT_SPAN = {"minute": timedelta(hours=1), "hour": timedelta(hours=24), "day": timedelta(days=30)}
MAX_SPAN = {"minute": timedelta(days=2), "hour": timedelta(days=93), "day": timedelta(days=3660)}
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2200, 1, 1)
MAX_LIMIT = 10_000


class ApiError(Exception):
    """An error answered as JSON: {"error": {"code", "message", "details": [...]}}."""

    def __init__(self, status: int, code: str, message: str, details: list[dict] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _shown(value: str, limit: int = 40) -> str:
    """A value quoted in an error message: cut, control characters escaped."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


@dataclass
class Checker:
    """Collects parameter problems; `done()` raises one 400 naming them all."""

    problems: list[dict] = field(default_factory=list)

    def fail(self, parameter: str, reason: str) -> None:
        self.problems.append({"parameter": parameter, "reason": reason})

    def done(self) -> None:
        if self.problems:
            names = ", ".join(p["parameter"] for p in self.problems)
            raise ApiError(400, "invalid_parameter", f"invalid parameter(s): {names}", self.problems)

    def choice(self, name: str, value: str | None, choices: tuple[str, ...], default: str | None) -> str | None:
        if value is None:
            return default
        if value not in choices:
            self.fail(name, f"{_shown(value)} is not one of {', '.join(choices)}")
            return default
        return value

    def identifier(self, name: str, value: str | None, allow_tenant_wide: bool = False) -> str | None:
        if value is None:
            return None
        if allow_tenant_wide and value == TENANT_WIDE:
            return value
        if not IDENTIFIER.fullmatch(value):
            self.fail(name, f"{_shown(value)} is not an identifier (letters, digits and _ . @ -, first a"
                            " letter or digit, at most 128 characters)")
            return None
        return value

    def pattern(self, name: str, value: str | None) -> str | None:
        if value is None:
            return None
        if not PATTERN.fullmatch(value):
            self.fail(name, f"{_shown(value)} is not a pattern name (lowercase letters, digits, _)")
            return None
        return value

    def limit(self, value: str | None, default: int, maximum: int = MAX_LIMIT) -> int:
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= maximum:
            self.fail("limit", f"{_shown(value)} is not a whole number from 1 to {maximum}")
            return default
        return int(value)

    def instant(self, name: str, value: str | None) -> datetime | None:
        """An ISO 8601 time; with an offset it is converted to UTC, without one it is UTC."""
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(name, f"{_shown(value)} is not an ISO 8601 time (e.g. 2026-12-03T10:00:00Z)")
            return None
        if parsed.tzinfo is not None:
            try:
                parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
            except OverflowError:
                self.fail(name, f"{_shown(value)} is out of range")
                return None
        if not EARLIEST <= parsed < LATEST:
            self.fail(name, f"{_shown(value)} is outside {EARLIEST:%Y}-{LATEST:%Y}")
            return None
        return parsed

    def time_range(self, start: str | None, end: str | None, grain: str, now: datetime,
                   so_far: bool = False) -> tuple[datetime, datetime]:
        """[from, to): `to` defaults to now, `from` to the grain's default span before `to`, or
        with `so_far` to the start of the grain's window holding `to` (today, this hour)."""
        errors_before = len(self.problems)
        end_at = self.instant("to", end)
        start_at = self.instant("from", start)
        if len(self.problems) > errors_before:
            return now, now
        end_at = end_at or now
        if start_at is None and so_far:
            start_at = window_start(end_at - timedelta(microseconds=1), grain)
        start_at = start_at or end_at - DEFAULT_SPAN[grain]
        if start_at >= end_at:
            self.fail("from", "must be before 'to'")
        elif end_at - start_at > MAX_SPAN[grain]:
            self.fail("from", f"the range is longer than {MAX_SPAN[grain].days} day(s), the most for grain"
                              f" {grain}: use a coarser grain or a shorter range")
        return start_at, end_at


def window_start(at: datetime, grain: str) -> datetime:
    """The start of the `grain` window holding `at`.

    >>> window_start(datetime(2026, 12, 3, 18, 42, 7), "day")
    datetime.datetime(2026, 12, 3, 0, 0)
    >>> window_start(datetime(2026, 12, 3, 18, 42, 7), "hour")
    datetime.datetime(2026, 12, 3, 18, 0)
    """
    trimmed = at.replace(second=0, microsecond=0)
    if grain == "minute":
        return trimmed
    return trimmed.replace(minute=0) if grain == "hour" else trimmed.replace(hour=0, minute=0)


def grain_choice(checker: Checker, value: str | None, allowed: tuple[str, ...] = GRAINS, default: str = "hour") -> str:
    return checker.choice("grain", value, allowed, default)


def metric_choice(checker: Checker, value: str | None) -> str:
    return checker.choice("by", value, PRODUCT_METRICS, "views")
