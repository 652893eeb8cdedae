"""Compatibility modes through the HTTP API with confluent-kafka's own client (each mode with
accepted and refused pairs), and the registry process `vigil infra up` starts, killed and restarted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from vigil import procs
from vigil.registry import service


def rec(*fields: tuple) -> Schema:
    """rec(("a", "string"), ("b", "string", "x")): a record; a third element is the default."""
    spec = [{"name": f[0], "type": f[1], **({"default": f[2]} if len(f) > 2 else {})} for f in fields]
    return Schema(json.dumps({"type": "record", "name": "Order", "namespace": "dev.vigil.test", "fields": spec}), "AVRO")


A = ("a", "string")
B = ("b", "string")
B_DEFAULT = ("b", "string", "x")
C = ("c", "string")
A_INT = ("a", "int")

# (name, history registered in order, candidate, the modes that must accept it, the field a refusal names)
CASES = [
    # Reading old data with the new schema needs a default for the added field: the backward family
    # refuses; old readers simply ignore the new field: the forward family accepts.
    ("add field without default", [rec(A)], rec(A, C), {"FORWARD", "FORWARD_TRANSITIVE", "NONE"}, "c"),
    # Old readers need the removed field: the forward family refuses.
    ("remove field without default", [rec(A, B)], rec(A), {"BACKWARD", "BACKWARD_TRANSITIVE", "NONE"}, "b"),
    ("add field with default", [rec(A)], rec(A, B_DEFAULT),
     {"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"}, None),
    ("change a field's type", [rec(A)], rec(A_INT), {"NONE"}, "a"),
    # Compatible with the latest version, not with the first: only the transitive modes look back.
    ("b loses its default (v1 lacked b)", [rec(A), rec(A, B_DEFAULT)], rec(A, B),
     {"BACKWARD", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "NONE"}, "b"),
    ("b removed (v1 had b without default)", [rec(A, B), rec(A, B_DEFAULT)], rec(A),
     {"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FULL", "NONE"}, "b"),
]
MODES = ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"]


def test_every_mode_accepts_and_refuses_what_it_should(schema_registry):
    client = SchemaRegistryClient({"url": schema_registry})
    outcomes = {mode: {"accepted": 0, "refused": 0} for mode in MODES}
    for name, history, candidate, accepting, field in CASES:
        for mode in MODES:
            subject = f"modes-{uuid.uuid4().hex[:8]}-value"
            client.set_compatibility(subject, "NONE")  # lay down the history as given
            for schema in history:
                client.register_schema(subject, schema)
            client.set_compatibility(subject, mode)
            expected = mode in accepting
            assert client.test_compatibility(subject, candidate) is expected, (name, mode)
            if expected:
                client.register_schema(subject, candidate)
                assert client.get_versions(subject) == list(range(1, len(history) + 2)), (name, mode)
            else:
                with pytest.raises(SchemaRegistryError) as error:
                    client.register_schema(subject, candidate)
                assert error.value.http_status_code == 409, (name, mode)
                assert f"'{field}'" in error.value.error_message, (name, mode, error.value.error_message)
                assert client.get_versions(subject) == list(range(1, len(history) + 1)), (name, mode)
            outcomes[mode]["accepted" if expected else "refused"] += 1
    for mode, counts in outcomes.items():  # every mode was seen saying yes and (but NONE) no
        assert counts["accepted"] > 0 and (counts["refused"] > 0 or mode == "NONE"), (mode, counts)


def test_the_global_mode_applies_to_subjects_without_their_own(schema_registry):
    client = SchemaRegistryClient({"url": schema_registry})
    before = client.get_compatibility()
    subject = f"global-{uuid.uuid4().hex[:8]}-value"
    try:
        client.register_schema(subject, rec(A))
        client.set_compatibility(level="FORWARD")
        assert client.test_compatibility(subject, rec(A, C)) is True  # BACKWARD would refuse this
        client.set_compatibility(level="BACKWARD")
        assert client.test_compatibility(subject, rec(A, C)) is False
    finally:
        client.set_compatibility(level=before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_registry_process_restarts_with_every_subject_version_and_id(kafka, schema_registry):
    """A second registry process (the same program `vigil infra up` starts, on the same _schemas
    log), SIGKILLed and started again: everything it served is served again, unchanged."""
    settings = service.RegistrySettings(port=_free_port())
    service.start(kafka, settings, log=lambda *_: None)
    try:
        client = SchemaRegistryClient({"url": settings.url})
        prefix = f"restart-{uuid.uuid4().hex[:6]}"
        for i in range(3):
            subject = f"{prefix}-{i}-value"
            client.set_compatibility(subject, "FULL" if i == 1 else "BACKWARD")
            client.register_schema(subject, rec(A))
            client.register_schema(subject, rec(A, B_DEFAULT))
        client.delete_subject(f"{prefix}-2-value")  # soft delete: must stay soft-deleted

        def snapshot(url: str) -> dict:
            fresh = SchemaRegistryClient({"url": url})  # no client-side cache
            state = {}
            for subject in fresh.get_subjects(deleted=True):
                if subject.startswith(prefix):
                    versions = fresh.get_versions(subject, deleted=True)
                    state[subject] = {
                        "live": fresh.get_versions(subject) if subject != f"{prefix}-2-value" else [],
                        "mode": fresh.get_compatibility(subject),
                        "versions": {v: (fresh.get_version(subject, v, deleted=True).schema_id,
                                         fresh.get_version(subject, v, deleted=True).schema.schema_str)
                                     for v in versions}}
            return state

        before = snapshot(settings.url)
        assert len(before) == 3 and before[f"{prefix}-1-value"]["mode"] == "FULL"
        pid = service.pid(settings)
        os.kill(pid, signal.SIGKILL)
        procs.wait_until(lambda: not procs.is_alive(pid), 10, "the registry to die")
        assert not service.healthy(settings.url)

        service.start(kafka, settings, log=lambda *_: None)
        assert service.pid(settings) != pid
        assert snapshot(settings.url) == before
        # Ids are never reused: a new schema after the restart gets an id above every earlier one.
        new_id = SchemaRegistryClient({"url": settings.url}).register_schema(
            f"{prefix}-3-value", rec(A, ("fresh", "string", "y")))
        assert new_id > max(i for s in before.values() for i, _ in s["versions"].values())
    finally:
        service.stop(settings, log=lambda *_: None)
