"""Validation of raw events: one pure function from Kafka record to verdict. No pyflink here.

The ingest job calls `validate` once per record (through udfs/ingest_udfs.py). A verdict is
either an accepted event or a rejection with a stable reason code (a metrics label and the
dead-letter record's `reason`) and a human-readable detail. Rules run in a fixed order and the
first failure wins, so a record has exactly one reason.

>>> rules = ValidationRules()
>>> from vigil import serde
>>> good = serde.encode(dict(event_id="e1", event_time=1_700_000_000_000, tenant_id="t1",
...     merchant_id="m1", user_id="u1", event_type="page_view"))
>>> validate(good, b"t1:u1", 1_700_000_000_000, rules).reason is None
True
>>> validate(b"not avro", b"t1:u1", 1_700_000_000_000, rules).reason
'bad_magic_byte'

`validate` returns a verdict for any input. A bug that raises on some record costs that record (to
the DLQ as `internal_error`, traceback in the log), not the job: a job that fails on a record
fails on it again after every restart. The one exception is an outage of the schema catalog
(`serde.OUTAGES`, e.g. the registry unreachable): it propagates, so that the job fails and retries
from its checkpoint instead of sending valid events to the DLQ.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import NamedTuple

from vigil import event_model as model
from vigil import serde

# Every reason code the ingest job can emit (bounded: they are metric label values).
REASONS = (
    "empty_payload", "bad_header", "bad_magic_byte", "unknown_schema_id", "avro_decode_error",
    "schema_mismatch", "oversized_payload", "missing_field", "invalid_identifier", "key_mismatch",
    "unknown_event_type", "invalid_status", "amount_out_of_range", "invalid_currency",
    "amount_precision", "invalid_country", "invalid_geo", "invalid_ip", "event_time_in_future",
    "event_time_too_old",
    # decided by Flink SQL after validation (see sql/queries/ingest_routing.sql):
    "late_event", "duplicate",
    # never bad input: a bug in validation or decoding, caught so that it costs one record
    "internal_error",
)

# Identifiers: printable, no separators used in keys (':'), no whitespace or control characters.
_ID = r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}"
_IDENTIFIER = re.compile(_ID)
# All identifiers of an event at once (one regex call instead of eight): joined with a separator no
# identifier contains, so a value holding the separator is caught by the count of separators.
_SEPARATOR = "\x00"
_IDENTIFIERS = re.compile(f"{_ID}(?:{_SEPARATOR}{_ID})*")
# The IPv4 addresses ipaddress.ip_address accepts (dotted quad, ASCII digits, 0-255, no leading
# zeros): most events carry one, and this is 6x cheaper than ipaddress; the rest go to ipaddress.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_log = logging.getLogger(__name__)
_ID_FIELDS = ("event_id", "tenant_id", "merchant_id", "user_id", "session_id", "device_id",
              "card_fingerprint", "product_id")


@dataclass(frozen=True)
class ValidationRules:
    max_payload_bytes: int = 64 * 1024
    max_future_skew_ms: int = 5 * 60 * 1000        # device clocks run ahead; more is a bad clock
    max_age_ms: int = 7 * 24 * 3600 * 1000          # older than a week is a replay, not an event
    check_key: bool = True                          # key must be tenant_id:user_id (partitioning)


class Verdict(NamedTuple):
    reason: str | None          # None when accepted
    detail: str | None
    event: dict | None          # the decoded event (also on most rejections, for diagnosis)

    @property
    def accepted(self) -> bool:
        return self.reason is None


def _reject(reason: str, detail: str, event: dict | None = None) -> Verdict:
    return Verdict(reason, _cut(detail, serde.MAX_DETAIL), event)


def validate(payload: bytes | None, key: bytes | None, now_ms: int, rules: ValidationRules,
             catalog: serde.SchemaCatalog | None = None) -> Verdict:
    """The verdict on one Kafka record. Raises only serde.OUTAGES (and MemoryError): see above."""
    try:
        return _validate(payload, key, now_ms, rules, catalog)
    except (*serde.OUTAGES, MemoryError):
        raise  # not the record's fault: fail, restart from the checkpoint, read it again
    except Exception as exc:  # noqa: BLE001 - whatever a bug raises, the job must go on
        _log.exception("internal error validating a record (routed to the DLQ as internal_error)")
        first_line = (str(exc).splitlines() or [""])[0]
        return Verdict("internal_error", _cut(f"{type(exc).__name__}: {first_line}", 300), None)


def _validate(payload: bytes | None, key: bytes | None, now_ms: int, rules: ValidationRules,
              catalog: serde.SchemaCatalog | None) -> Verdict:
    if payload is not None and len(payload) > rules.max_payload_bytes:
        return _reject("oversized_payload", f"{len(payload)} bytes > limit {rules.max_payload_bytes}")
    try:
        event = serde.decode(payload or b"", catalog)
    except serde.DecodeError as exc:
        return _reject(exc.reason, exc.detail)
    return _check_fields(event, key, now_ms, rules)


def _check_fields(event: dict, key: bytes | None, now_ms: int, rules: ValidationRules) -> Verdict:
    missing = [f for f in model.REQUIRED_FIELDS if event.get(f) in (None, "")]
    if missing:
        return _reject("missing_field", "required: " + ", ".join(missing), event)

    present = [value for value in map(event.get, _ID_FIELDS) if value is not None]
    joined = _SEPARATOR.join(present)
    if not (_IDENTIFIERS.fullmatch(joined) and joined.count(_SEPARATOR) == len(present) - 1):
        for name in _ID_FIELDS:  # which one, for the detail
            value = event.get(name)
            if value is not None and not _IDENTIFIER.fullmatch(value):
                return _reject("invalid_identifier", f"{name}={_shown(value)} is not a valid identifier", event)

    if rules.check_key:
        expected = f"{event['tenant_id']}:{event['user_id']}".encode()
        if key != expected:
            return _reject("key_mismatch", f"record key {_shown(key)} != tenant_id:user_id", event)

    event_type = event["event_type"]
    if event_type not in model.EVENT_TYPES:
        return _reject("unknown_event_type", f"event_type={_shown(event_type)}", event)
    allowed = model.STATUSES.get(event_type)
    status = event.get("status")
    if (allowed is None and status is not None) or (allowed is not None and status not in allowed):
        return _reject("invalid_status", f"status={_shown(status)} for {event_type}", event)

    verdict = _check_money(event)
    if verdict is None:
        verdict = _check_place(event)
    if verdict is None:
        verdict = _check_time(event, now_ms, rules)
    return verdict or Verdict(None, None, event)


def _check_money(event: dict) -> Verdict | None:
    amount: Decimal | None = event.get("amount")
    currency = event.get("currency")
    if event["event_type"] in model.MONEY_EVENT_TYPES and (amount is None or currency is None):
        missing = [n for n, v in (("amount", amount), ("currency", currency)) if v is None]
        return _reject("missing_field", f"{event['event_type']} requires " + ", ".join(missing), event)
    if amount is None and currency is None:
        return None
    if amount is None or not amount.is_finite() or not 0 < amount <= model.MAX_AMOUNT:
        return _reject("amount_out_of_range", f"amount={_cut(str(amount), 40)} not in (0, {model.MAX_AMOUNT}]", event)
    minor_units = model.CURRENCY_MINOR_UNITS.get(currency or "")
    if minor_units is None:
        return _reject("invalid_currency", f"currency={_shown(currency)} is not ISO 4217", event)
    if amount != amount.quantize(Decimal(1).scaleb(-minor_units)):
        return _reject("amount_precision", f"{amount} has more than {minor_units} decimals for {currency}", event)
    return None


def _check_place(event: dict) -> Verdict | None:
    country = event.get("country")
    if country is not None and country not in model.COUNTRIES:
        return _reject("invalid_country", f"country={_shown(country)} is not ISO 3166-1 alpha-2", event)
    lat, lon = event.get("latitude"), event.get("longitude")
    if (lat is None) != (lon is None):
        return _reject("invalid_geo", "latitude and longitude come together", event)
    if lat is not None and not (math.isfinite(lat) and math.isfinite(lon)
                                and -90 <= lat <= 90 and -180 <= lon <= 180):
        return _reject("invalid_geo", f"({lat}, {lon}) is not a place on Earth", event)
    ip = event.get("ip")
    if ip is not None and not _IPV4.fullmatch(ip):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return _reject("invalid_ip", f"ip={_shown(ip)}", event)
    return None


def _check_time(event: dict, now_ms: int, rules: ValidationRules) -> Verdict | None:
    event_ms = to_millis(event["event_time"])
    if event_ms > now_ms + rules.max_future_skew_ms:
        return _reject("event_time_in_future", f"{(event_ms - now_ms) // 1000}s ahead of the ingest clock", event)
    if event_ms < now_ms - rules.max_age_ms:
        return _reject("event_time_too_old", f"{(now_ms - event_ms) // 1000}s old", event)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLI = timedelta(milliseconds=1)


def to_millis(value: datetime | int) -> int:
    """fastavro returns timestamp-millis as an aware datetime; integer arithmetic avoids float error."""
    if isinstance(value, int):
        return value
    return (value - _EPOCH) // _MILLI


def _shown(value, limit: int = 40) -> str:
    """A value quoted for a detail message: cut short and with control characters escaped."""
    return _cut(repr(value), limit)


def _cut(text: str, limit: int) -> str:
    """
    >>> _cut("x" * 5000, 10)
    'xxxxxxxxxx...(5000 chars)'
    """
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"
