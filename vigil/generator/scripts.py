"""Scripts of events: ordinary shopping sessions and labelled fraud scenarios.

A script is a generator of (delay_seconds, fields) pairs: the stream schedules each event
`delay_seconds` after the previous one of the same script and adds event_id and event_time.
Fraud scripts name their scenario; every event they yield is labelled with it (ground truth).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Iterator

from vigil.event_model import CURRENCY_MINOR_UNITS, UNITS_PER_USD
from vigil.generator.world import CATEGORIES, CITIES, Merchant, User, World

Script = Iterator[tuple[float, dict]]

SCENARIOS = ("card_testing", "account_takeover", "impossible_travel", "velocity_burst",
             "shared_device", "refund_abuse", "amount_anomaly")

# A script step whose fields carry this key is ordinary behaviour inside a scenario's script
# (the customer's own history before an attack): the stream drops the key and labels the event
# with no scenario.
BENIGN = "_benign"


_PER_USD = UNITS_PER_USD  # amounts drawn in USD are expressed in the merchant's currency


def money(rng: random.Random, low_usd: float, high_usd: float, currency: str) -> Decimal:
    """An amount drawn in US dollars, expressed in `currency` with its ISO 4217 minor units."""
    digits = CURRENCY_MINOR_UNITS[currency]
    value = rng.uniform(low_usd, high_usd) * _PER_USD.get(currency, 1)
    return Decimal(str(round(value, digits))).quantize(Decimal(1).scaleb(-digits))


def fields(user: User, merchant: Merchant, event_type: str, city: int | None = None,
           device: str | None = None, ip: str | None = None, **extra) -> dict:
    c = CITIES[user.home if city is None else city]
    record = {
        "tenant_id": user.tenant_id, "merchant_id": merchant.merchant_id, "user_id": user.user_id,
        "session_id": None, "device_id": device or user.devices[0], "ip": ip or user.ip,
        "card_fingerprint": None, "event_type": event_type, "status": None, "amount": None,
        "currency": None, "country": c[1], "latitude": c[2], "longitude": c[3],
        "product_id": None, "category": None, "schema_version": 1,
    }
    record.update(extra)
    return record


def _pay(rng, user, merchant, amount, currency, card, approved: bool, **kw) -> list[tuple[float, dict]]:
    return [
        (rng.uniform(2, 20), fields(user, merchant, "checkout", amount=amount, currency=currency, **kw)),
        (rng.uniform(1, 5), fields(user, merchant, "payment_attempt", amount=amount, currency=currency,
                                   card_fingerprint=card, **kw)),
        (rng.uniform(0.5, 2), fields(user, merchant, "payment_result", amount=amount, currency=currency,
                                     card_fingerprint=card, status="approved" if approved else "declined", **kw)),
    ]


def shopping_session(rng: random.Random, world: World) -> Script:
    merchant = world.pick_merchant(rng)
    user = world.pick_user(rng, merchant.tenant_id)
    session = f"s{rng.getrandbits(40):010x}"
    device = rng.choice(user.devices)
    currency = CITIES[merchant.currency_city][4]
    common = dict(session_id=session, device=device)
    if rng.random() < 0.5:
        yield 0.0, fields(user, merchant, "login", status="success" if rng.random() < 0.97 else "failure", **common)
    category = rng.choice(CATEGORIES)
    for _ in range(rng.randint(1, 8)):
        product = f"p{rng.randrange(50_000):05d}"
        kind = "search" if rng.random() < 0.15 else "page_view"
        yield rng.uniform(1, 10), fields(user, merchant, kind, product_id=product, category=category, **common)
    if rng.random() < 0.4:
        yield rng.uniform(1, 10), fields(user, merchant, "add_to_cart", product_id=product, category=category, **common)
        if rng.random() < 0.6:
            amount = money(rng, 5, 400, currency)
            card = rng.choice(user.cards)
            yield from _pay(rng, user, merchant, amount, currency, card, rng.random() < 0.95, **common)
            if rng.random() < 0.02:
                yield rng.uniform(60, 600), fields(user, merchant, "refund", amount=amount, currency=currency,
                                                   card_fingerprint=card, status="requested", **common)


def card_testing(rng: random.Random, world: World) -> Script:
    """Many small, mostly declined attempts on one stolen card from one device, then a large one."""
    merchant = world.pick_merchant(rng)
    user = world.pick_user(rng, merchant.tenant_id)
    card, device = f"c{rng.getrandbits(48):012x}", f"d{rng.getrandbits(48):012x}"
    currency = CITIES[merchant.currency_city][4]
    for i in range(rng.randint(6, 12)):
        amount = money(rng, 0.5, 3, currency)
        yield (0.0 if i == 0 else rng.uniform(2, 10)), fields(
            user, merchant, "payment_attempt", device=device, amount=amount, currency=currency, card_fingerprint=card)
        yield rng.uniform(0.2, 1), fields(user, merchant, "payment_result", device=device, amount=amount,
                                          currency=currency, card_fingerprint=card,
                                          status="declined" if rng.random() < 0.8 else "approved")
    big = money(rng, 500, 2500, currency)
    for delay, record in _pay(rng, user, merchant, big, currency, card, True, device=device):
        yield delay, record


def account_takeover(rng: random.Random, world: World) -> Script:
    """Login from a new device in another country, password change, high-value checkout: < 30 min."""
    merchant = world.pick_merchant(rng)
    user = world.pick_user(rng, merchant.tenant_id)
    city = world.far_city(rng, user.home, 1500)
    device, ip = f"d{rng.getrandbits(48):012x}", f"{rng.randrange(11, 223)}.{rng.randrange(256)}.7.{rng.randrange(1, 255)}"
    currency = CITIES[merchant.currency_city][4]
    kw = dict(city=city, device=device, ip=ip)
    yield 0.0, fields(user, merchant, "login", status="success", **kw)
    yield rng.uniform(30, 300), fields(user, merchant, "password_change", **kw)
    yield rng.uniform(10, 120), fields(user, merchant, "address_change", **kw)
    big = money(rng, 800, 4000, currency)
    card = f"c{rng.getrandbits(48):012x}"
    for delay, record in _pay(rng, user, merchant, big, currency, card, True, **kw):
        yield rng.uniform(30, 600) if record["event_type"] == "checkout" else delay, record


def impossible_travel(rng: random.Random, world: World) -> Script:
    """The same user active from two cities whose distance implies > 900 km/h."""
    merchant = world.pick_merchant(rng)
    user = world.pick_user(rng, merchant.tenant_id)
    far = world.far_city(rng, user.home, 3000)
    yield 0.0, fields(user, merchant, "login", status="success")
    yield rng.uniform(5, 60), fields(user, merchant, "page_view", product_id="p00001", category="electronics")
    yield rng.uniform(300, 1200), fields(user, merchant, "login", status="success", city=far,
                                         device=f"d{rng.getrandbits(48):012x}")
    yield rng.uniform(5, 60), fields(user, merchant, "page_view", city=far, product_id="p00002", category="jewelry")


def velocity_burst(rng: random.Random, world: World) -> Script:
    """One card used for 15-30 payment attempts within about a minute, across a tenant's merchants."""
    first = world.pick_merchant(rng)
    merchants = [m for m in world.merchants if m.tenant_id == first.tenant_id][:20] or [first]
    user = world.pick_user(rng, first.tenant_id)
    card = user.cards[0]
    for i in range(rng.randint(15, 30)):
        merchant = rng.choice(merchants)
        currency = CITIES[merchant.currency_city][4]
        yield (0.0 if i == 0 else rng.uniform(0.5, 3)), fields(
            user, merchant, "payment_attempt", amount=money(rng, 20, 200, currency), currency=currency,
            card_fingerprint=card)


def shared_device(rng: random.Random, world: World) -> Script:
    """One device (and card) used by many accounts of a tenant within minutes."""
    merchant = world.pick_merchant(rng)
    device, card = f"d{rng.getrandbits(48):012x}", f"c{rng.getrandbits(48):012x}"
    currency = CITIES[merchant.currency_city][4]
    for i in range(rng.randint(8, 15)):
        user = world.pick_user(rng, merchant.tenant_id)
        yield (0.0 if i == 0 else rng.uniform(10, 60)), fields(user, merchant, "login", status="success", device=device)
        amount = money(rng, 50, 300, currency)
        yield rng.uniform(5, 30), fields(user, merchant, "payment_attempt", device=device, amount=amount,
                                         currency=currency, card_fingerprint=card)


def refund_abuse(rng: random.Random, world: World) -> Script:
    """Purchases followed by refund requests for most of them, and a chargeback."""
    merchant = world.pick_merchant(rng)
    user = world.pick_user(rng, merchant.tenant_id)
    currency = CITIES[merchant.currency_city][4]
    card = user.cards[0]
    bought = []
    for _ in range(rng.randint(3, 6)):
        amount = money(rng, 50, 500, currency)
        bought.append(amount)
        for delay, record in _pay(rng, user, merchant, amount, currency, card, True):
            yield delay, record
    for amount in bought[: max(2, len(bought) - 1)]:
        yield rng.uniform(30, 300), fields(user, merchant, "refund", amount=amount, currency=currency,
                                           card_fingerprint=card, status="requested")
    yield rng.uniform(60, 600), fields(user, merchant, "chargeback", amount=bought[-1], currency=currency,
                                       card_fingerprint=card, status="opened")


def purchases(rng: random.Random, user: User, merchant: Merchant, usd_amounts, card: str,
              gap_s: tuple[float, float], **kw) -> Script:
    """The user's ordinary purchases (checkout, attempt, approved result), `gap_s` apart, amounts
    given in US dollars and paid in the merchant's currency; marked benign."""
    currency = CITIES[merchant.currency_city][4]
    for usd in usd_amounts:
        amount = money(rng, usd, usd, currency)
        for i, (delay, record) in enumerate(_pay(rng, user, merchant, amount, currency, card, True, **kw)):
            yield (rng.uniform(*gap_s) if i == 0 else delay), {**record, BENIGN: True}


def amount_anomaly(rng: random.Random, world: World) -> Script:
    """A customer with a steady spending history (6-10 purchases within a few percent of their
    usual amount) suddenly pays 15-40 times that amount, once or twice: a compromised account
    or card. Only the anomalous payments are labelled."""
    merchant = world.pick_merchant(rng)
    # From a pool no other script draws from: their amounts would break the steady history.
    user = world.pick_regular(rng, merchant.tenant_id, "steady_then_anomaly")
    card, usual = user.cards[0], user.usual_usd
    yield from purchases(rng, user, merchant, [usual * rng.lognormvariate(0, 0.1) for _ in range(rng.randint(6, 10))],
                         card, (60, 300))
    currency = CITIES[merchant.currency_city][4]
    for i in range(rng.randint(1, 2)):
        big = money(rng, usual * 15, usual * 40, currency)
        for j, (delay, record) in enumerate(_pay(rng, user, merchant, big, currency, card, True)):
            yield (rng.uniform(300, 1200) if i == j == 0 else delay), record


SCENARIO_SCRIPTS = {
    "card_testing": card_testing, "account_takeover": account_takeover,
    "impossible_travel": impossible_travel, "velocity_burst": velocity_burst,
    "shared_device": shared_device, "refund_abuse": refund_abuse, "amount_anomaly": amount_anomaly,
}
