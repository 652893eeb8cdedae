"""Traffic mixes: differently parameterised worlds and behaviours, so that the fraud patterns are
judged on traffic they were not tuned to (bench/fraud_quality.py --mix, vigil generate --mix).

- standard: 50 tenants with Zipf-skewed sizes, 10,000 merchants in every currency, 500,000
  users each with their own device; ordinary sessions and the seven attacks.
- diverse: 8 tenants of which one holds most of the merchants, 1,500 merchants selling in
  currencies with large nominal amounts (JPY, KRW, INR, ARS, NGN, ...), 40,000 users living in
  households of up to four that share a device; beside ordinary sessions, the near misses of
  vigil/generator/behaviours.py: volatile and steady spenders, family evenings on one device,
  frequent travellers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrafficMix:
    tenants: int
    merchants: int
    users: int
    tenant_skew: float = 1.0       # Zipf exponent of the tenants' numbers of merchants
    merchant_skew: float = 1.1     # Zipf exponent of the merchants' traffic
    merchant_cities: tuple[str, ...] | None = None   # where merchants sell from (None: anywhere)
    household_size: int = 1
    # Share of new ordinary scripts that are each near-miss behaviour (the rest: shopping sessions).
    behaviours: dict[str, float] = field(default_factory=dict)


MIXES = {
    "standard": TrafficMix(tenants=50, merchants=10_000, users=500_000),
    "diverse": TrafficMix(
        tenants=8, merchants=1_500, users=40_000, tenant_skew=2.0, merchant_skew=0.9,
        merchant_cities=("Tokyo", "Seoul", "Mumbai", "Buenos Aires", "Lagos", "Istanbul", "Sao Paulo",
                         "Mexico City", "Johannesburg", "Stockholm", "Dubai"),
        household_size=4,
        behaviours={"volatile_spender": 0.04, "steady_spender": 0.04, "family_evening": 0.04,
                    "frequent_traveller": 0.03}),
}
