"""Readable builders for test events: `event(type="checkout", amount="12.50", ...)`."""

from __future__ import annotations

from decimal import Decimal

from vigil import serde

NOW_MS = 1_795_000_000_000  # a fixed "now" (2026-11-18) so that time rules are deterministic


def event(type: str = "page_view", *, id: str = "e1", tenant: str = "t1", user: str = "u1",
          merchant: str = "m1", at_ms: int = NOW_MS, amount: str | None = None,
          currency: str | None = None, **fields) -> dict:
    record = {"event_id": id, "event_time": at_ms, "tenant_id": tenant, "merchant_id": merchant,
              "user_id": user, "event_type": type,
              "amount": Decimal(amount) if amount is not None else None, "currency": currency}
    record.update(fields)
    return record


def payment(amount: str = "25.00", currency: str = "EUR", **fields) -> dict:
    fields.setdefault("card_fingerprint", "c1")
    return event("payment_attempt", amount=amount, currency=currency, **fields)


def wire(record: dict, writer=None) -> tuple[bytes, bytes]:
    """(key, value) as a producer following the contract writes them; `writer`: a
    vigil.generator.wire.EventWriter with registry ids (default: the offline catalog, v2)."""
    value = writer.event(record) if writer is not None else serde.encode(record)
    return f"{record['tenant_id']}:{record['user_id']}".encode(), value
