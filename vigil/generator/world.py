"""The simulated world: tenants, merchants with Zipf-skewed traffic, users, places.

Nothing here is stored per user: a user's profile (home city, devices, cards) is derived from
(seed, tenant, user index), so a world of millions of users costs no memory.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from dataclasses import dataclass

# (city, ISO country, latitude, longitude, currency)
CITIES = (
    ("Paris", "FR", 48.857, 2.352, "EUR"), ("Berlin", "DE", 52.520, 13.405, "EUR"),
    ("Madrid", "ES", 40.417, -3.704, "EUR"), ("Rome", "IT", 41.903, 12.496, "EUR"),
    ("Amsterdam", "NL", 52.368, 4.904, "EUR"), ("Dublin", "IE", 53.350, -6.260, "EUR"),
    ("London", "GB", 51.507, -0.128, "GBP"), ("Manchester", "GB", 53.481, -2.243, "GBP"),
    ("Stockholm", "SE", 59.329, 18.069, "SEK"), ("Warsaw", "PL", 52.230, 21.012, "PLN"),
    ("Zurich", "CH", 47.377, 8.542, "CHF"), ("New York", "US", 40.713, -74.006, "USD"),
    ("Chicago", "US", 41.878, -87.630, "USD"), ("San Francisco", "US", 37.775, -122.419, "USD"),
    ("Austin", "US", 30.267, -97.743, "USD"), ("Toronto", "CA", 43.653, -79.383, "CAD"),
    ("Mexico City", "MX", 19.433, -99.133, "MXN"), ("Sao Paulo", "BR", -23.551, -46.633, "BRL"),
    ("Buenos Aires", "AR", -34.604, -58.382, "ARS"), ("Tokyo", "JP", 35.676, 139.650, "JPY"),
    ("Seoul", "KR", 37.567, 126.978, "KRW"), ("Singapore", "SG", 1.352, 103.820, "SGD"),
    ("Sydney", "AU", -33.869, 151.209, "AUD"), ("Mumbai", "IN", 19.076, 72.878, "INR"),
    ("Dubai", "AE", 25.205, 55.271, "AED"), ("Lagos", "NG", 6.524, 3.379, "NGN"),
    ("Johannesburg", "ZA", -26.204, 28.047, "ZAR"), ("Istanbul", "TR", 41.008, 28.978, "TRY"),
)

CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "toys", "books", "grocery",
              "garden", "automotive", "jewelry", "gift_cards")


# Users with a behaviour that spans hours or a spending habit (World.pick_regular).
PERSONAS = ("traveller", "family", "volatile_spender", "steady_spender", "steady_then_anomaly")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank ** s) for rank in range(1, n + 1)]


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    tenant_id: str
    currency_city: int      # index in CITIES: where the merchant sells from


@dataclass(frozen=True)
class User:
    tenant_id: str
    user_id: str
    home: int               # index in CITIES
    devices: tuple[str, ...]
    cards: tuple[str, ...]
    ip: str
    usual_usd: float        # what this customer usually spends (10-200 USD), for spending personas


class World:
    def __init__(self, seed: int, tenants: int = 50, merchants: int = 10_000,
                 users: int = 500_000, skew: float = 1.1, tenant_skew: float = 1.0,
                 merchant_cities: tuple[str, ...] | None = None, household_size: int = 1):
        rng = random.Random(f"world-{seed}")
        self.seed = seed
        self.household_size = household_size
        self.tenants = [f"t{i:03d}" for i in range(tenants)]
        # Tenants own Zipf-skewed numbers of merchants; merchants get Zipf-skewed traffic.
        tenant_weights = zipf_weights(tenants, tenant_skew)
        tenant_cum = list(itertools.accumulate(tenant_weights))
        cities = [i for i, c in enumerate(CITIES) if merchant_cities is None or c[0] in merchant_cities]
        self.merchants = []
        for i in range(merchants):
            tenant = self.tenants[bisect.bisect(tenant_cum, rng.random() * tenant_cum[-1])]
            self.merchants.append(Merchant(f"m{i:05d}", tenant, rng.choice(cities)))
        weights = zipf_weights(merchants, skew)
        rng.shuffle(weights)
        self._merchant_cum = list(itertools.accumulate(weights))
        # Users per tenant in proportion to the tenant's traffic share.
        share: dict[str, float] = {}
        for merchant, weight in zip(self.merchants, weights):
            share[merchant.tenant_id] = share.get(merchant.tenant_id, 0.0) + weight
        total = sum(share.values())
        self.users_per_tenant = {t: max(20, int(users * share.get(t, 0.0) / total)) for t in self.tenants}

    def pick_merchant(self, rng: random.Random) -> Merchant:
        return self.merchants[bisect.bisect(self._merchant_cum, rng.random() * self._merchant_cum[-1])]

    def pick_user(self, rng: random.Random, tenant_id: str) -> User:
        return self.user(tenant_id, rng.randrange(self.users_per_tenant[tenant_id]))

    def pick_regular(self, rng: random.Random, tenant_id: str, persona: str) -> User:
        """A user of `persona` (PERSONAS), from a pool of its own that ordinary shopping sessions
        never draw from: for scripts that say where a user is for hours (a traveller abroad, a
        family at home) or how they spend, so that no other script of the same user contradicts
        them (a random ordinary amount in the middle of a steady spender's history would be a
        real anomaly that the labels call ordinary)."""
        n = self.users_per_tenant[tenant_id]
        return self.user(tenant_id, n * (1 + PERSONAS.index(persona)) + rng.randrange(n))

    def household(self, user: User) -> tuple[list[User], str]:
        """The members of `user`'s household (up to household_size users with consecutive
        indices) and the device they share."""
        index = int(user.user_id[1:])
        first = index - index % self.household_size
        members = [self.user(user.tenant_id, i) for i in range(first, first + self.household_size)]
        d = hashlib.blake2b(f"{self.seed}/{user.tenant_id}/household/{first}".encode(), digest_size=6).digest()
        return members, f"d{d.hex()}"

    def user(self, tenant_id: str, index: int) -> User:
        # Bytes of a keyed hash give every attribute: cheaper than seeding a Random per user.
        d = hashlib.blake2b(f"{self.seed}/{tenant_id}/{index}".encode(), digest_size=32).digest()
        # A household lives in one place: its members' home is drawn from the first member's hash.
        first = index - index % self.household_size
        home = (d if first == index else hashlib.blake2b(f"{self.seed}/{tenant_id}/{first}".encode(),
                                                         digest_size=32).digest())[0] % len(CITIES)
        devices = (f"d{d[1:7].hex()}",) + ((f"d{d[7:13].hex()}",) if d[13] < 77 else ())
        cards = (f"c{d[14:20].hex()}",) + ((f"c{d[20:26].hex()}",) if d[26] < 64 else ())
        ip = f"{11 + d[27] % 212}.{d[28]}.{d[29]}.{1 + d[30] % 254}"
        return User(tenant_id, f"u{index:07d}", home, devices, cards, ip, 10.0 * 20.0 ** (d[31] / 255))

    def far_city(self, rng: random.Random, home: int, min_km: float = 3000) -> int:
        lat, lon = CITIES[home][2], CITIES[home][3]
        far = [i for i, c in enumerate(CITIES) if haversine_km(lat, lon, c[2], c[3]) >= min_km]
        return rng.choice(far)
