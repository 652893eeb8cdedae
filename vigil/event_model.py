"""What a valid Vigil event is, as data: event types, outcomes, money events, ISO code lists.

The ingest validators (udfs/validation.py) and the generator both read these tables, so a new
event type or currency is added in one place.
"""

from __future__ import annotations

EVENT_TYPES = frozenset({
    "login", "logout", "page_view", "search", "add_to_cart", "remove_from_cart", "checkout",
    "payment_attempt", "payment_result", "password_change", "address_change", "refund", "chargeback",
})

# Events that move money: they need a positive amount and an ISO 4217 currency.
MONEY_EVENT_TYPES = frozenset({"checkout", "payment_attempt", "payment_result", "refund", "chargeback"})

# Events that name a payment card.
CARD_EVENT_TYPES = frozenset({"payment_attempt", "payment_result", "refund", "chargeback"})

# Allowed `status` values where an event type has an outcome; other types carry no status.
STATUSES = {
    "login": frozenset({"success", "failure"}),
    "payment_result": frozenset({"approved", "declined"}),
    "refund": frozenset({"requested", "approved", "rejected"}),
    "chargeback": frozenset({"opened", "won", "lost"}),
}

REQUIRED_FIELDS = ("event_id", "event_time", "tenant_id", "merchant_id", "user_id", "event_type")

# Largest single amount accepted in any currency; above it the event is rejected as out of range.
MAX_AMOUNT = 1_000_000_000

# ISO 4217 active currency codes -> number of minor-unit digits (list of 2025; fund and
# precious-metal codes, XTS and XXX excluded on purpose).
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
    "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB "
    "PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP "
    "SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
CURRENCY_MINOR_UNITS = {
    **{c: 2 for c in _TWO.split()}, **{c: 0 for c in _ZERO.split()},
    **{c: 3 for c in _THREE.split()}, **{c: 4 for c in _FOUR.split()},
}

# ISO 3166-1 alpha-2 officially assigned country codes.
COUNTRIES = frozenset((
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR "
    "BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ "
    "EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW "
    "GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY "
    "KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV "
    "MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY "
    "QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG "
    "TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
).split())


# Approximate units of each currency per US dollar (reference rates, late 2026). The fraud job
# compares amounts across currencies in USD with them; production would join a daily rates
# table instead (a versioned table, like the fraud rules). Unlisted currencies count as USD.
UNITS_PER_USD = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CHF": 0.88, "CAD": 1.36, "AUD": 1.5, "SGD": 1.34,
    "SEK": 10.0, "PLN": 4.0, "AED": 3.67, "JPY": 150.0, "KRW": 1300.0, "ARS": 900.0,
    "NGN": 1500.0, "INR": 80.0, "MXN": 17.0, "BRL": 5.0, "TRY": 30.0, "ZAR": 18.0,
}
