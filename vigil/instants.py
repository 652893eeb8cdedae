"""Instants and durations as people type them on a command line: UTC ISO 8601 or epoch
milliseconds, and "90s" / "15m" / "6h" / "2d". Used by the fraud job's --start-time/--stop-time
and by `vigil backtest`; pure, no I/O.

>>> parse_instant("2026-12-03T10:00:00Z")
1796292000000
>>> parse_instant("2026-12-03 10:00:00.250")     # no zone: UTC, like every time in Vigil
1796292000250
>>> parse_instant("1796292000000")
1796292000000
>>> parse_duration("90m"), parse_duration("2 d"), parse_duration("0")
(5400000, 172800000, 0)
>>> iso(1796292000250)
'2026-12-03T10:00:00.250Z'
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*")


def parse_instant(text: str) -> int:
    """Epoch milliseconds of `text`: digits are epoch milliseconds; anything else is read as ISO
    8601 (a date, or a date and time; UTC when no zone is given). Raises ValueError with the text."""
    value = str(text).strip()
    if re.fullmatch(r"\d{1,16}", value):
        return int(value)
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "Zz" else value)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor an ISO 8601 time "
                         "(e.g. 2026-12-03T10:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return round(parsed.timestamp() * 1000)


def is_duration(text: str) -> bool:
    """Whether `text` is a duration with its unit ("6h"), as opposed to an instant: a bare
    number is an instant (epoch milliseconds) where either may be given.

    >>> is_duration("6h"), is_duration("1796292000000")
    (True, False)
    """
    match = _DURATION.fullmatch(str(text))
    return bool(match and match.group(2))


def parse_duration(text: str) -> int:
    """Milliseconds of "250ms", "90s", "15m", "6h", "2d" (a bare number is seconds)."""
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 15m, 6h, 2d)")
    return round(float(match.group(1)) * _UNITS_MS[match.group(2) or "s"])


def iso(ms: int) -> str:
    """UTC ISO 8601 with milliseconds."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
