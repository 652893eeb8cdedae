"""The event stream: interleaves scripts in event-time order at a target rate, injects fraud
scenarios and bad input, and says for every record what the ingest job must do with it.

Deterministic: the same seed, start time and parameters give the same records, byte for byte.
Event time is virtual (start + n / rate); the producer paces it against the wall clock.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from vigil.generator import bad_input
from vigil.generator.behaviours import BEHAVIOURS
from vigil.generator.mixes import MIXES
from vigil.generator.scripts import BENIGN, SCENARIO_SCRIPTS, SCENARIOS, shopping_session
from vigil.generator.wire import EventWriter
from vigil.generator.world import World

# Methods that carry a card fingerprint (a wallet tokenises a card, a BNPL plan is funded by one);
# v2's other methods (bank_transfer, gift_card) have no card and do not occur in generated traffic.
PAYMENT_METHODS = ("card", "wallet", "bnpl")
LOYALTY_TIERS = ("none", "silver", "gold", "platinum")


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    event_id: str | None
    tenant_id: str | None
    expected: str                 # "clean", a DLQ reason, or "late_event" (see `late_or_clean`)
    kind: str                     # "session", a scenario name, a bad-input kind, ...
    scenario: str | None = None   # ground truth: the fraud scenario this event belongs to
    instance: str | None = None   # the scenario instance (one attack)
    event_type: str | None = None  # scripted events only (None for injected bad input and copies)

    @property
    def late_or_clean(self) -> bool:
        """Late events are routed by watermark: behind it -> DLQ late_event, else accepted."""
        return self.expected == "late_event"


@dataclass(frozen=True)
class StreamSettings:
    seed: int
    start_ms: int
    rate: float = 1000.0            # events per second of event time
    fraud_fraction: float = 0.02    # share of new scripts that are fraud scenarios
    bad_fraction: float = 0.0       # share of records that are bad input (incl. duplicates, late)
    mix: str = "standard"           # vigil/generator/mixes.py
    tenants: int | None = None      # None: the mix's
    merchants: int | None = None
    users: int | None = None
    v2_fraction: float = 0.0        # share of valid events written with event schema v2


class EventStream:
    def __init__(self, settings: StreamSettings, writer: EventWriter | None = None):
        self.s = settings
        self.write = writer or EventWriter.offline()
        # Its own generator, so that asking for v2 events leaves every other draw as it was.
        self._schema_rng = random.Random(f"schema-{settings.seed}")
        mix = self.mix = MIXES[settings.mix]
        self.world = World(settings.seed, settings.tenants or mix.tenants, settings.merchants or mix.merchants,
                           settings.users or mix.users, mix.merchant_skew, mix.tenant_skew, mix.merchant_cities,
                           mix.household_size)
        self.rng = random.Random(f"stream-{settings.seed}")
        self._heap: list = []
        self._seq = 0
        self._recent: deque[Record] = deque(maxlen=64)   # for duplicates
        self._bad_kinds = list(bad_input.BAD_KINDS) + list(bad_input.STREAM_KINDS)

    def records(self) -> Iterator[Record]:
        n = 0
        step_ms = 1000.0 / self.s.rate
        while True:
            clock = self.s.start_ms + int(n * step_ms)
            n += 1
            if self.s.bad_fraction and self.rng.random() < self.s.bad_fraction:
                yield self._bad(clock)
                continue
            if not self._heap or self._heap[0][0] > clock:
                self._start_script(clock)
            yield self._next_scripted()

    # --- scripts -------------------------------------------------------------------------------
    def _start_script(self, at_ms: int) -> None:
        if self.rng.random() < self.s.fraud_fraction:
            scenario = SCENARIOS[self.rng.randrange(len(SCENARIOS))]
            script = SCENARIO_SCRIPTS[scenario](self.rng, self.world)
            instance = f"{scenario}-{self.rng.getrandbits(32):08x}"
        else:
            scenario, instance, script = None, None, self._ordinary_script()
        self._push(at_ms, script, scenario, instance, first=True)

    def _ordinary_script(self):
        if self.mix.behaviours:
            draw = self.rng.random()
            for name, share in self.mix.behaviours.items():
                if draw < share:
                    return BEHAVIOURS[name](self.rng, self.world)
                draw -= share
        return shopping_session(self.rng, self.world)

    def _push(self, at_ms: int, script, scenario, instance, first: bool = False) -> None:
        step = next(script, None)
        if step is None:
            return
        # A new script starts now: event times never run ahead of the stream's clock, so that
        # "out of order by less than the watermark bound" means what it says.
        delay_s, fields = (0.0 if first else step[0]), step[1]
        self._seq += 1
        heapq.heappush(self._heap, (at_ms + int(delay_s * 1000), self._seq, fields, script, scenario, instance))

    def _next_scripted(self) -> Record:
        at_ms, _, fields, script, scenario, instance = heapq.heappop(self._heap)
        self._push(at_ms, script, scenario, instance)
        event = fields  # each script step yields a fresh dict: completed in place
        if event.pop(BENIGN, False):
            scenario = instance = None
        event["event_id"], event["event_time"] = self._event_id(), at_ms
        self._maybe_v2(event)
        record = Record(bad_input.key_of(event), self.write.event(event), at_ms, event["event_id"],
                        event["tenant_id"], "clean", scenario or "session", scenario, instance,
                        event["event_type"])
        self._recent.append(record)
        return record

    def _event_id(self) -> str:
        return f"e{self.rng.getrandbits(64):016x}"

    def _maybe_v2(self, event: dict) -> None:
        """Upgrade the event to schema v2 (in place) for the asked share; v2 fields are stable per
        user and card, as a real storefront's would be."""
        if not self.s.v2_fraction or self._schema_rng.random() >= self.s.v2_fraction:
            return
        event["schema_version"] = 2
        event["loyalty_tier"] = LOYALTY_TIERS[zlib.crc32(event["user_id"].encode()) % len(LOYALTY_TIERS)]
        card = event.get("card_fingerprint")
        event["payment_method"] = PAYMENT_METHODS[zlib.crc32(card.encode()) % len(PAYMENT_METHODS)] if card else None

    # --- bad input -----------------------------------------------------------------------------
    def _fresh_event(self, clock: int) -> dict:
        """A plausible standalone event (a page view) to corrupt."""
        session = shopping_session(self.rng, self.world)
        _, fields = next(session)
        event = {**fields, "event_id": self._event_id(), "event_time": clock}
        self._maybe_v2(event)
        return event

    def _bad(self, clock: int) -> Record:
        kind = self._bad_kinds[self.rng.randrange(len(self._bad_kinds))]
        if kind == "duplicate" and not self._recent:
            kind = "out_of_order"  # nothing sent yet to copy
        if kind == "duplicate":
            original = self._recent[self.rng.randrange(len(self._recent))]
            # The copy is not labelled again: ground truth has one line per event.
            return Record(original.key, original.value, original.timestamp_ms, original.event_id,
                          original.tenant_id, "duplicate", kind)
        event = self._fresh_event(clock)
        if kind in ("late", "out_of_order"):
            # late: minutes behind the stream; out of order: within the watermark's bound.
            behind = self.rng.randrange(120_000, 600_000) if kind == "late" else self.rng.randrange(200, 3000)
            event["event_time"] = clock - behind
            expected = "late_event" if kind == "late" else "clean"
            return Record(bad_input.key_of(event), self.write.event(event), event["event_time"],
                          event["event_id"], event["tenant_id"], expected, kind)
        key, value, timestamp, expected = bad_input.BAD_KINDS[kind](self.rng, event, self.write)
        return Record(key, value, timestamp, None if expected != "clean" else event["event_id"],
                      event.get("tenant_id"), expected, kind)
