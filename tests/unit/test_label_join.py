"""The label join of the risk scorer as pure logic (no JVM): a label teaches the supervised model
with the vector its payment was scored with, once, within the horizon."""

from __future__ import annotations

from udfs.label_join import LabelJoin, MemoryStore

HOUR = 3_600_000


def label(event_id: str) -> dict:
    return {"kind": "label", "event_id": event_id}


def joined(horizon_ms: int = HOUR) -> LabelJoin:
    return LabelJoin(MemoryStore(), MemoryStore(), horizon_ms)


def test_a_label_gets_its_payments_vector_once():
    join = joined()
    assert join.keep({"p1": {"x": 0.1}, "p2": {"x": 0.2}}, {"p1": 1_000, "p2": 2_000}) == [1_000 + HOUR, 2_000 + HOUR]
    assert join.take([label("p1")]) == ({"p1": {"x": 0.1}}, 1, 0)
    assert join.take([label("p1")]) == ({}, 0, 1)  # a second label for the same payment learns nothing
    assert join.vectors == {"p2": {"x": 0.2}}


def test_a_label_after_the_horizon_or_for_an_unknown_payment_is_unmatched():
    join = joined(horizon_ms=500)
    join.keep({"p1": {"x": 0.1}}, {"p1": 1_000})
    assert join.expire(1_499) == 0          # not due yet
    assert join.expire(1_500) == 1          # the horizon passed
    assert join.take([label("p1"), label("never-paid")]) == ({}, 0, 2)
    assert join.vectors == {} and join.expiry == {}


def test_payments_due_at_the_same_time_expire_together_and_other_items_are_ignored():
    join = joined(horizon_ms=10)
    join.keep({"a": {}, "b": {}}, {"a": 5, "b": 5})
    assert join.expiry == {15: ["a", "b"]}
    assert join.take([{"kind": "payment", "event_id": "a"}, {"kind": "hit", "event_id": "b"}]) == ({}, 0, 0)
    assert join.expire(15) == 2 and join.vectors == {}
