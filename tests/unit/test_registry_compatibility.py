"""Compatibility modes: accepted and refused pairs for each, with messages that name the field."""

from __future__ import annotations

import json

import pytest

from vigil.registry.compatibility import MODES, InvalidSchema, incompatibilities


def record(*fields: dict) -> str:
    return json.dumps({"type": "record", "name": "Event", "namespace": "t", "fields": list(fields)})


A = {"name": "a", "type": "string"}
B_REQUIRED = {"name": "b", "type": "int"}
B_OPTIONAL = {"name": "b", "type": ["null", "int"], "default": None}
A_LONG = {"name": "a", "type": "long"}

V1 = record(A)
V2_ADD_OPTIONAL = record(A, B_OPTIONAL)
V2_ADD_REQUIRED = record(A, B_REQUIRED)
V2_RETYPED = record(A_LONG)


@pytest.mark.parametrize("mode, new, ok", [
    ("BACKWARD", V2_ADD_OPTIONAL, True),     # new readers can read old data: default fills b
    ("BACKWARD", V2_ADD_REQUIRED, False),    # no default for b
    ("FORWARD", V2_ADD_REQUIRED, True),      # old readers ignore b
    ("FORWARD", V2_RETYPED, False),
    ("FULL", V2_ADD_OPTIONAL, True),
    ("FULL", V2_ADD_REQUIRED, False),
    ("NONE", V2_RETYPED, True),
])
def test_modes_against_the_latest_version(mode, new, ok):
    assert (incompatibilities(new, [V1], mode) == []) is ok


def test_transitive_modes_check_every_version_not_only_the_latest():
    # v1 {a}, v2 {a, b int default 0}, v3 {a, b int}: v3 can read v2 data but not v1 data.
    history = [V1, record(A, {"name": "b", "type": "int", "default": 0})]
    v3 = record(A, B_REQUIRED)
    assert incompatibilities(v3, history, "BACKWARD") == []
    assert any("'b'" in m for m in incompatibilities(v3, history, "BACKWARD_TRANSITIVE"))
    assert incompatibilities(v3, history, "FULL") == []
    assert incompatibilities(v3, history, "FULL_TRANSITIVE") != []
    # FORWARD: old readers must read new data; v2's reader has a default for b, v1 ignores it.
    assert incompatibilities(record(A), history, "FORWARD_TRANSITIVE") == []
    assert incompatibilities(record(A_LONG), history, "FORWARD_TRANSITIVE") != []


def test_messages_name_the_field_at_fault():
    [message] = incompatibilities(V2_ADD_REQUIRED, [V1], "BACKWARD")
    assert "'b'" in message and "no default" in message
    [message] = incompatibilities(V2_RETYPED, [V1], "BACKWARD")
    assert "'a'" in message and "type mismatch" in message


def test_the_event_envelope_evolves_with_optional_fields():
    from vigil.serde import load_schema
    v1 = load_schema("event-v1.avsc")
    v2 = dict(v1, fields=v1["fields"] + [{"name": "payment_method", "type": ["null", "string"], "default": None},
                                         {"name": "loyalty_tier", "type": ["null", "string"], "default": None}])
    assert incompatibilities(json.dumps(v2), [json.dumps(v1)], "FULL_TRANSITIVE") == []
    removed = dict(v1, fields=[f for f in v1["fields"] if f["name"] != "schema_version"] +
                   [{"name": "schema_version", "type": "string"}])
    assert any("schema_version" in m for m in incompatibilities(json.dumps(removed), [json.dumps(v1)], "BACKWARD"))


@pytest.mark.parametrize("bad", ["{", '{"type": "record"}', '"no_such_type"', "x" * 10_000,
                                 '{"type": "record", "name": "E", "fields": [{"name": "a"}]}'])
def test_malformed_schemas_are_refused_clearly(bad):
    with pytest.raises(InvalidSchema):
        incompatibilities(bad, [V1], "BACKWARD")


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError):
        incompatibilities(V1, [V1], "SIDEWAYS")
    assert "NONE" in MODES
