"""Ordinary behaviours that look like fraud to a naive rule: the near misses of the "diverse"
traffic mix (vigil/generator/mixes.py). Nothing here is labelled fraud; a pattern that alerts on
these customers is wrong.

Each behaviour draws its users from a pool of its own (World.pick_regular), and spenders spend
around their own usual amount (User.usual_usd): ordinary sessions draw amounts regardless of who
pays, so one of them in the middle of a steady spender's history would be a real anomaly that
the labels call ordinary.

- volatile spenders: amounts that always varied widely (alternately well below and well above
  their usual), then a purchase several times their median (not an amount anomaly for them);
- steady spenders: near-identical amounts, then one twice as large;
- families: two to four members of a household log in on the family's shared device within an
  evening and buy with their own cards (fewer accounts than a shared-device attack);
- frequent travellers: active at home, then, after a flight's duration, from a city thousands of
  kilometres away on their own device (fast, but slower than an airliner).
"""

from __future__ import annotations

import math
import random
import statistics

from vigil.generator.scripts import Script, fields, money, purchases
from vigil.generator.world import CITIES, World, haversine_km

AIRLINER_KMH = 800.0   # door to door a flight is slower still: boarding, taxiing, the airport


def volatile_spender(rng: random.Random, world: World) -> Script:
    merchant = world.pick_merchant(rng)
    user = world.pick_regular(rng, merchant.tenant_id, "volatile_spender")
    usual = user.usual_usd
    # Alternately below and above the usual by a factor of 1.6 to 4.5 (ln 0.5 to 1.5), so that
    # the volatility shows in any five of them. Drawn independently, five payments sometimes lay
    # within a factor of 1.4 and the next at 4x: a history that looks steady, which no detector
    # can tell from a steady customer's (docs/adr/0009, section 4).
    first_sign = rng.choice((-1, 1))
    history = [usual * math.exp(first_sign * (-1) ** i * rng.uniform(0.5, 1.5)) for i in range(rng.randint(6, 10))]
    final = min(statistics.median(history) * rng.uniform(3, 8), max(history) * 1.5)
    yield from purchases(rng, user, merchant, history + [final], user.cards[0], (60, 400))


def steady_spender(rng: random.Random, world: World) -> Script:
    merchant = world.pick_merchant(rng)
    user = world.pick_regular(rng, merchant.tenant_id, "steady_spender")
    usual = user.usual_usd
    history = [usual * rng.lognormvariate(0, 0.08) for _ in range(rng.randint(6, 10))]
    yield from purchases(rng, user, merchant, history + [usual * rng.uniform(1.5, 2.5)], user.cards[0], (60, 400))


def family_evening(rng: random.Random, world: World) -> Script:
    merchant = world.pick_merchant(rng)
    members, device = world.household(world.pick_regular(rng, merchant.tenant_id, "family"))
    currency = CITIES[merchant.currency_city][4]
    for i, member in enumerate(rng.sample(members, rng.randint(min(2, len(members)), len(members)))):
        session = dict(session_id=f"s{rng.getrandbits(40):010x}", device=device)
        yield (0.0 if i == 0 else rng.uniform(120, 1200)), fields(member, merchant, "login", status="success", **session)
        for _ in range(rng.randint(1, 4)):
            yield rng.uniform(5, 60), fields(member, merchant, "page_view", product_id=f"p{rng.randrange(50_000):05d}",
                                             category=rng.choice(("toys", "books", "home")), **session)
        if rng.random() < 0.5:
            amount = money(rng, 10, 150, currency)
            card = member.cards[0]
            yield rng.uniform(10, 60), fields(member, merchant, "payment_attempt", amount=amount, currency=currency,
                                              card_fingerprint=card, **session)
            yield rng.uniform(0.5, 2), fields(member, merchant, "payment_result", amount=amount, currency=currency,
                                              card_fingerprint=card, status="approved", **session)


def frequent_traveller(rng: random.Random, world: World) -> Script:
    merchant = world.pick_merchant(rng)
    user = world.pick_regular(rng, merchant.tenant_id, "traveller")
    away = world.far_city(rng, user.home, 1000)
    km = haversine_km(CITIES[user.home][2], CITIES[user.home][3], CITIES[away][2], CITIES[away][3])
    yield 0.0, fields(user, merchant, "login", status="success")
    yield rng.uniform(5, 60), fields(user, merchant, "page_view", product_id="p00003", category="books")
    flight_s = km / AIRLINER_KMH * 3600 + rng.uniform(1800, 3 * 3600)
    foreign_ip = f"{rng.randrange(11, 223)}.{rng.randrange(256)}.9.{rng.randrange(1, 255)}"
    yield flight_s, fields(user, merchant, "login", status="success", city=away, ip=foreign_ip)
    currency = CITIES[merchant.currency_city][4]
    amount, card = money(rng, 20, 300, currency), user.cards[0]
    yield rng.uniform(60, 900), fields(user, merchant, "payment_attempt", city=away, ip=foreign_ip, amount=amount,
                                       currency=currency, card_fingerprint=card)
    yield rng.uniform(0.5, 2), fields(user, merchant, "payment_result", city=away, ip=foreign_ip, amount=amount,
                                      currency=currency, card_fingerprint=card, status="approved")


BEHAVIOURS = {"volatile_spender": volatile_spender, "steady_spender": steady_spender,
              "family_evening": family_evening, "frequent_traveller": frequent_traveller}
