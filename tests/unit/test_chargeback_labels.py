"""Chargeback labels: the delayed ground truth of every payment attempt, as a payment system sends it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from vigil.generator.producer import ChargebackLabels, ChargebackSettings, chargeback_label
from vigil.generator.stream import EventStream, Record, StreamSettings

T0 = 1_795_000_000_000  # event time of the payment attempts below, ms


def attempt(event_id: str = "e0000000000000001", *, scenario: str | None = None, at_ms: int = T0,
            tenant: str = "t001", event_type: str = "payment_attempt") -> Record:
    """A payment attempt as the stream yields it (session traffic, or part of a fraud scenario)."""
    return Record(f"{tenant}:u1".encode(), b"", at_ms, event_id, tenant, "clean", scenario or "session",
                  scenario, f"{scenario}-0001" if scenario else None, event_type)


def stream(n: int, **settings) -> list[Record]:
    defaults = dict(seed=11, start_ms=T0, rate=1000.0, fraud_fraction=0.1)
    return list(itertools.islice(EventStream(StreamSettings(**{**defaults, **settings})).records(), n))


def test_a_fraudulent_attempt_comes_back_as_a_chargeback_within_the_delay_bounds():
    label = chargeback_label(attempt("e00000000000000f1", scenario="card_testing", at_ms=T0 + 250))
    assert label["is_fraud"] is True and label["outcome"] == "chargeback"
    assert label["event_id"] == "e00000000000000f1" and label["tenant_id"] == "t001"
    assert label["event_time"] == T0 + 250
    assert 120_000 <= label["label_time"] - label["event_time"] <= 1_800_000


def test_a_legitimate_attempt_matures_after_the_maturity_window():
    label = chargeback_label(attempt(at_ms=T0 + 7))
    assert label == {"tenant_id": "t001", "event_id": "e0000000000000001", "event_time": T0 + 7,
                     "label_time": T0 + 7 + 3_600_000, "is_fraud": False, "outcome": "matured"}
    shorter = chargeback_label(attempt(at_ms=T0 + 7), ChargebackSettings(maturity_s=600))
    assert shorter["label_time"] == T0 + 7 + 600_000


def test_fraud_delays_spread_over_the_whole_window_and_stay_inside_it():
    settings = ChargebackSettings(chargeback_delay_s=(60, 90))
    delays = [chargeback_label(attempt(f"e{i:016x}", scenario="velocity_burst"), settings)["label_time"] - T0
              for i in range(2000)]
    assert 60_000 <= min(delays) < 61_000 and 89_000 < max(delays) <= 90_000
    assert 70_000 < sorted(delays)[len(delays) // 2] < 80_000, "uniform: the median is near the middle"
    fixed = ChargebackSettings(chargeback_delay_s=(300, 300))
    assert chargeback_label(attempt(scenario="refund_abuse"), fixed)["label_time"] == T0 + 300_000


def test_the_same_attempt_gets_the_same_label_and_other_attempts_other_delays():
    a = chargeback_label(attempt("e00000000000000a1", scenario="account_takeover"))
    assert a == chargeback_label(attempt("e00000000000000a1", scenario="account_takeover"))
    others = {chargeback_label(attempt(f"e{i:016x}", scenario="account_takeover"))["label_time"] for i in range(20)}
    assert len(others) > 15


def test_the_delay_does_not_depend_on_the_process():
    """Python salts str hashes per process: the delay must come from a stable hash instead."""
    code = ("from vigil.generator.producer import chargeback_label; from vigil.generator.stream import Record; "
            "print(chargeback_label(Record(None, None, 0, 'e00000000000000b2', 't001', 'clean', 'shared_device', "
            "'shared_device', None, 'payment_attempt'))['label_time'])")
    here = chargeback_label(attempt("e00000000000000b2", scenario="shared_device", at_ms=0))["label_time"]
    for hash_seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert run.stdout == f"{here}\n"


@pytest.mark.parametrize("event_type", ["checkout", "payment_result", "login", "page_view", None])
def test_only_payment_attempts_are_labelled(event_type):
    assert chargeback_label(attempt(event_type=event_type)) is None
    assert chargeback_label(attempt(scenario="card_testing", event_type=event_type)) is None


def test_in_a_generated_stream_every_payment_attempt_gets_one_label_and_bad_input_none():
    records = stream(20_000, bad_fraction=0.1)
    labels = {r.event_id: chargeback_label(r) for r in records if chargeback_label(r)}
    attempts = [r for r in records if r.event_type == "payment_attempt"]
    assert attempts and len(labels) == len(attempts), "one label per attempt, keyed by its event id"
    injected = [r for r in records if r.kind != "session" and r.scenario is None]
    assert injected and not any(chargeback_label(r) for r in injected), "bad input, late events, duplicates"
    fraud = {r.event_id for r in attempts if r.scenario}
    assert fraud and {e for e, label in labels.items() if label["is_fraud"]} == fraud
    assert all(label["tenant_id"] == r.tenant_id and label["event_time"] == r.timestamp_ms
               for r in attempts for label in [labels[r.event_id]])


def test_the_same_stream_gives_the_same_labels():
    first, again = stream(5000), stream(5000)
    assert [chargeback_label(r) for r in first] == [chargeback_label(r) for r in again]


def test_labels_leave_in_label_time_order_once_the_stream_reaches_their_label_time():
    """A consumer's watermark on label_time must see no label late, even with late events in the
    stream: a label is held until the stream's event time reaches it; the end releases the rest."""
    records = stream(20_000, rate=10.0, bad_fraction=0.05)  # 2000 s of event time, late events too
    labels = ChargebackLabels(ChargebackSettings(chargeback_delay_s=(120, 1800), maturity_s=600))
    released, clock = [], 0
    for record in records:
        clock = max(clock, record.timestamp_ms)
        due = labels.after(record)
        assert all(label["label_time"] <= clock for label in due)
        released += due
    during = len(released)
    released += labels.drain()
    assert 0 < during < len(released), "some labels come due within the run, the rest at its end"
    times = [label["label_time"] for label in released]
    assert times == sorted(times)
    attempts = {r.event_id for r in records if r.event_type == "payment_attempt"}
    assert sorted(label["event_id"] for label in released) == sorted(attempts)
    assert {label["outcome"] for label in released} == {"chargeback", "matured"}


@pytest.mark.parametrize("bounds, maturity", [((10, 5), 3600), ((-1, 5), 3600), ((120, 1800), -1)])
def test_impossible_settings_are_refused(bounds, maturity):
    with pytest.raises(ValueError):
        ChargebackSettings(chargeback_delay_s=bounds, maturity_s=maturity)
