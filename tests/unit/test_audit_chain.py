"""vigil.audit_chain: a valid log verifies; every way of tampering with it is reported."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.audit_chain import GENESIS, Anchor, entry_hash, next_entry, verify

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


def _log(n: int) -> list[dict]:
    entries, previous = [], None
    for i in range(n):
        previous = next_entry(previous, "alice@ops", f"action-{i % 3}", f"target-{i}",
                              before={"v": i}, after={"v": i + 1}, at=T0 + timedelta(seconds=i))
        entries.append(previous)
    return entries


def _anchor(entry: dict) -> Anchor:
    return Anchor(entry["seq"], entry["hash"], entry["at"])


def test_a_valid_log_verifies_and_links_each_entry_to_the_one_before():
    log = _log(5)
    assert verify(log, [_anchor(log[2]), _anchor(log[4])]) == []
    assert log[0]["prev_hash"] == GENESIS and log[0]["seq"] == 1
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(log, log[1:]))
    assert log[0]["at"] == "2026-12-04T12:00:00.000+00:00"


def test_a_modified_entry_is_reported_even_with_its_hash_recomputed():
    log = _log(5)
    log[2]["after"] = {"v": 999}
    assert any("#2" in p and "modified" in p for p in verify(log))
    log[2]["hash"] = entry_hash(log[2])           # the forger recomputes the hash: the next link breaks
    assert any("#3" in p and "does not follow" in p for p in verify(log))


def test_a_deleted_entry_is_reported():
    log = _log(5)
    del log[2]
    problems = verify(log)
    assert any("does not follow" in p for p in problems) and any("sequence missing" in p for p in problems)


def test_an_inserted_entry_is_reported_even_when_chained_to_its_predecessor():
    log = _log(5)
    forged = next_entry(log[1], "mallory", "rules.publish", "t1", at=T0)
    log.insert(2, forged)
    problems = verify(log)
    assert any("#3" in p and "does not follow" in p for p in problems)
    assert any("out of order or repeated" in p for p in problems)


def test_reordered_entries_are_reported():
    log = _log(5)
    log[1], log[2] = log[2], log[1]
    assert any("does not follow" in p for p in verify(log))


def test_truncation_is_caught_by_the_anchors_and_only_by_them():
    log = _log(6)
    anchors = [_anchor(log[1]), _anchor(log[5])]
    newest_removed = log[:4]
    assert verify(newest_removed) == []          # a shorter chain is still a chain ...
    assert any("newest entries were removed" in p for p in verify(newest_removed, anchors))
    oldest_removed = log[3:]
    assert any("does not start at the first entry" in p for p in verify(oldest_removed))
    assert any("oldest entries were removed" in p for p in verify(oldest_removed, anchors))


def test_a_rewritten_log_is_caught_by_an_anchor():
    log = _log(4)
    anchors = [_anchor(log[3])]
    rewritten, previous = [], None                # every entry again, one value changed, rehashed
    for entry in log:
        previous = next_entry(previous, entry["actor"], entry["action"], entry["target"], entry["before"],
                              {"v": -1} if entry["seq"] == 2 else entry["after"],
                              at=datetime.fromisoformat(entry["at"]))
        rewritten.append(previous)
    assert verify(rewritten) == []
    assert any("another hash" in p for p in verify(rewritten, anchors))


def test_records_that_are_not_entries_are_reported_not_fatal():
    log = _log(3)
    log.insert(1, {"raw": "garbage"})
    problems = verify(log)
    assert any("not an audit entry" in p for p in problems)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5), st.sampled_from(["seq", "at", "actor", "action", "target", "before", "after",
                                             "prev_hash", "hash"]),
       st.one_of(st.integers(), st.text(max_size=20), st.none(), st.dictionaries(st.text(max_size=5), st.integers())))
def test_any_change_to_any_field_of_any_entry_is_reported(index, field, value):
    log = _log(6)
    if log[index][field] == value:
        return
    tampered = copy.deepcopy(log)
    tampered[index][field] = value
    assert verify(tampered) != []


@settings(max_examples=100, deadline=None)
@given(st.permutations(list(range(6))))
def test_any_reordering_is_reported(order):
    log = _log(6)
    if order == sorted(order):
        return
    assert verify([log[i] for i in order]) != []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_an_anchor_file_name_is_only_ever_made_from_a_topic_name(topic):
    from vigil import audit_log
    import re
    try:
        path = audit_log.anchors_file(topic)
    except ValueError:
        assert not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", "..")
    else:
        assert path.parent == audit_log.home() and path.name == f"anchors-{topic}.jsonl"
