"""Fraud rule parameters: defaults, per-tenant overrides, and their messages on `fraud.rules`.

The fraud job reads `fraud.rules` (compacted, key = tenant_id, "*" = everyone's defaults) as a
versioned table and joins every event to the rules in force at its event time, so thresholds
and enabled patterns change at runtime, per tenant, without a restart, and a replay of the same
events and rules gives the same alerts. Precedence per parameter: the tenant's row, then the
"*" row, then `DEFAULTS` below (compiled into the job's SQL). A null parameter in a row means
"inherit". Window lengths are fixed in the SQL (1 min, 10 min, 1 h, 30 min for account
takeover, 30 days for refunds): only thresholds and switches are runtime parameters.

>>> msg = rule_message("t042", {"card_testing_min_small": 8}, effective_from_ms=0)
>>> msg["tenant_id"], msg["card_testing_min_small"], msg["velocity_1m"]
('t042', 8, None)
>>> rule_message("t042", {"no_such_parameter": 1}, effective_from_ms=0)
Traceback (most recent call last):
...
ValueError: unknown rule parameters: no_such_parameter
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

DEFAULT_KEY = "*"


@dataclass(frozen=True)
class RuleParameters:
    # card testing: >= min_small payment attempts below small_usd, then one of >= large_usd, on
    # one card within 30 minutes
    card_testing_enabled: bool = True
    card_testing_small_usd: float = 5.0
    card_testing_min_small: int = 4
    card_testing_large_usd: float = 300.0
    # account takeover: login from a device the user never used, password change, checkout of
    # >= min_usd, within 30 minutes
    account_takeover_enabled: bool = True
    account_takeover_min_usd: float = 500.0
    # impossible travel: consecutive events of one user implying more than max_kmh over at least
    # min_km (GPS jitter and city-level geo-IP stay below it)
    impossible_travel_enabled: bool = True
    impossible_travel_max_kmh: float = 900.0
    impossible_travel_min_km: float = 300.0
    # velocity: payment attempts per card, user, device and IP reaching a count within a window
    velocity_enabled: bool = True
    velocity_1m: int = 10
    velocity_10m: int = 20
    velocity_1h: int = 40
    # shared device: distinct accounts on one device within 1 h (cross-user, within a tenant)
    shared_device_enabled: bool = True
    shared_device_min_users: int = 5
    # refund abuse: refunds/chargebacks of one user within 30 days, and their share of purchases
    refund_abuse_enabled: bool = True
    refund_abuse_min_refunds: int = 2
    refund_abuse_min_ratio: float = 0.5
    # amount anomaly: a payment this many standard deviations (of ln amount, floored at 0.5) above
    # the user's own last payments, and at least min_over_max times the largest of them (a
    # payment within what the customer already paid is not an anomaly for them)
    amount_anomaly_enabled: bool = True
    amount_anomaly_min_z: float = 4.0
    amount_anomaly_min_history: int = 5
    amount_anomaly_min_over_max: float = 2.0
    # cross-tenant card: one card fingerprint paying at >= min_tenants tenants within 24 h. The
    # only state shared across tenants, over the pseudonymous fingerprint (never a card number);
    # an alert tells a tenant how many tenants saw the card, never which ones.
    cross_tenant_card_enabled: bool = True
    cross_tenant_card_min_tenants: int = 3


DEFAULTS = RuleParameters()
PARAMETERS = [f.name for f in fields(RuleParameters)]
SQL_TYPES = {"bool": "BOOLEAN", "int": "INT", "float": "DOUBLE"}  # dataclass field types, as written
SQL_KINDS = {f.name: str(f.type) for f in fields(RuleParameters)}  # parameter -> "bool" | "int" | "float"


def sql_columns() -> str:
    """The parameter columns of the rules table, in order (for the DDL)."""
    return ",\n  ".join(f"{f.name} {SQL_TYPES[str(f.type)]}" for f in fields(RuleParameters))


def sql_literal(name: str) -> str:
    value = getattr(DEFAULTS, name)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    return str(value)


def rule_message(tenant_id: str, overrides: dict, effective_from_ms: int | None = None) -> dict:
    """The value written to fraud.rules for a tenant ("*" for the defaults): every parameter,
    null where the row inherits."""
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown rule parameters: {', '.join(unknown)}")
    effective = int(time.time() * 1000) if effective_from_ms is None else effective_from_ms
    message = {name: overrides.get(name) for name in PARAMETERS}
    message.update(tenant_id=tenant_id, effective_from=_iso(effective))
    return message


def default_message(effective_from_ms: int | None = None) -> dict:
    return rule_message(DEFAULT_KEY, asdict(DEFAULTS), effective_from_ms)


def _iso(ms: int) -> str:
    """UTC 'YYYY-MM-DD HH:MM:SS.mmm', how Flink's JSON format reads a TIMESTAMP(3)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}"


# ---- Reading rule messages: any bytes in, a verdict out ----------------------------------------
# fraud.rules is written by `vigil rules`, but any client with write access can put anything
# there. The fraud job reads it as bytes and keeps only what `parse_rule_message` accepts; the rest
# goes to its dead-letter topic and the tenant keeps the rules it had (docs/adr/0006).

MAX_RULE_BYTES = 16 * 1024
_TENANT = re.compile(r"\*|[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}")
# Parameters that are shares of a whole, in (0, 1]; every other number is a positive threshold.
_RATIOS = {"refund_abuse_min_ratio"}
_MAX_NUMBER = 1e9


class RuleVerdict(NamedTuple):
    reason: str | None        # None: accepted; "json_parse_error" or "invalid_rule"
    detail: str | None
    tenant_id: str | None
    values: dict              # parameter -> value (None = inherit); empty when refused


def parse_rule_message(key: bytes | None, value: bytes | None, effective_from_ok: bool = True) -> RuleVerdict:
    """Validate one fraud.rules record (key `{"tenant_id": ...}`, value a rule_message).

    `effective_from_ok` says whether the job's SQL could read the value's effective_from as a
    timestamp (it is the versioned table's time, parsed in SQL: both must agree).

    >>> ok = json.dumps(rule_message("t1", {"velocity_1m": 15}, 0)).encode()
    >>> v = parse_rule_message(b'{"tenant_id": "t1"}', ok)
    >>> v.reason, v.tenant_id, v.values["velocity_1m"], v.values["velocity_10m"]
    (None, 't1', 15, None)
    >>> parse_rule_message(b'{"tenant_id": "t1"}', b'{"velocity_1m": "lots"').reason
    'json_parse_error'
    >>> parse_rule_message(b'{"tenant_id": "t1"}', ok.replace(b'15', b'-3')).detail
    'velocity_1m=-3 must be a positive number'
    """
    if value is None:
        return _refused("invalid_rule", "a tombstone: to reset a tenant to the defaults publish a rule "
                                        "without overrides (vigil rules set --tenant T)")
    if len(value) > MAX_RULE_BYTES:
        return _refused("invalid_rule", f"{len(value)} bytes > limit {MAX_RULE_BYTES}")
    try:
        message = json.loads(value)
        key_message = json.loads(key) if key is not None else None
    except (ValueError, RecursionError) as exc:   # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _refused("json_parse_error", f"{type(exc).__name__}: {str(exc)[:200]}")
    if not isinstance(message, dict):
        return _refused("invalid_rule", f"the value is a JSON {type(message).__name__}, not an object")
    tenant = message.get("tenant_id")
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        return _refused("invalid_rule", f"tenant_id={_shown(tenant)} is not a tenant id or \"*\"")
    if not isinstance(key_message, dict) or key_message.get("tenant_id") != tenant:
        return _refused("invalid_rule", f"record key {_shown(key)} does not name tenant {tenant!r}")
    unknown = sorted(set(message) - set(PARAMETERS) - {"tenant_id", "effective_from"})
    if unknown:
        return _refused("invalid_rule", "unknown rule parameters: " + ", ".join(_shown(u) for u in unknown[:10]))
    if not isinstance(message.get("effective_from"), str) or not effective_from_ok:
        return _refused("invalid_rule", f"effective_from={_shown(message.get('effective_from'))} is not "
                                        "'YYYY-MM-DD HH:MM:SS[.mmm]' (UTC)")
    values = {}
    for name in PARAMETERS:
        problem = _check_parameter(name, message.get(name))
        if problem:
            return _refused("invalid_rule", problem)
        values[name] = message.get(name)
    return RuleVerdict(None, None, tenant, values)


def _check_parameter(name: str, value) -> str | None:
    if value is None:
        return None
    kind = SQL_KINDS[name]
    if kind == "bool":
        return None if isinstance(value, bool) else f"{name}={_shown(value)} must be true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and not isinstance(value, int)):
        return f"{name}={_shown(value)} must be {'an integer' if kind == 'int' else 'a number'}"
    if not (math.isfinite(value) and 0 < value <= _MAX_NUMBER):
        return f"{name}={_shown(value)} must be a positive number"
    if name in _RATIOS and value > 1:
        return f"{name}={_shown(value)} must be a share in (0, 1]"
    return None


def _refused(reason: str, detail: str) -> RuleVerdict:
    return RuleVerdict(reason, detail, None, {})


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"
