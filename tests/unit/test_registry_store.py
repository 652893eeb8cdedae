"""Registry state: registration, idempotency, ids never reused, deletes, config; replay gives
the same state (what makes restarts and two instances agree)."""

from __future__ import annotations

import json

import pytest

from vigil.registry.store import RegistryError, RegistryState


def record(*names: str, optional: tuple[str, ...] = ()) -> str:
    fields = [{"name": n, "type": "string"} for n in names]
    fields += [{"name": n, "type": ["null", "string"], "default": None} for n in optional]
    return json.dumps({"type": "record", "name": "Event", "fields": fields})


class Log:
    """The compacted topic, in memory for logic tests (the service uses Kafka)."""

    def __init__(self):
        self.records: list = []
        self.state = RegistryState()

    def run(self, result):
        value, records = result
        for key, record_value in records:
            self.records.append((key, record_value))
            self.state.apply(key, record_value)
        # As KafkaLog.append: without a competing writer, every record written takes effect.
        assert all(self.state.took_effect(key, record_value) for key, record_value in records)
        return value

    def replay(self) -> RegistryState:
        fresh = RegistryState()
        for key, value in self.records:
            fresh.apply(key, value)
        return fresh


def test_register_is_idempotent_and_ids_are_global():
    log = Log()
    first = log.run(log.state.register("a-value", record("x")))
    again = log.run(log.state.register("a-value", record("x")))
    other_subject = log.run(log.state.register("b-value", record("x")))
    assert first == again == other_subject == 1
    assert len(log.records) == 2  # the repeat wrote nothing
    assert log.run(log.state.register("a-value", record("x", optional=("y",)))) == 2
    assert [v.version for v in log.state.live_versions("a-value")] == [1, 2]


def test_incompatible_schema_is_refused_with_409_naming_the_field():
    log = Log()
    log.run(log.state.register("s", record("x")))
    with pytest.raises(RegistryError) as error:
        log.state.register("s", record("x", "y"))
    assert error.value.http_status == 409 and "'y'" in error.value.message
    log.run(log.state.set_config("s", "NONE"))
    assert log.run(log.state.register("s", record("x", "y"))) == 2


def test_ids_are_never_reused_after_hard_delete():
    log = Log()
    log.run(log.state.register("s", record("x")))
    log.run(log.state.delete_subject("s", permanent=False))
    assert log.state.subjects() == [] and log.state.subjects(include_deleted=True) == ["s"]
    log.run(log.state.delete_subject("s", permanent=True))
    assert log.state.subjects(include_deleted=True) == []
    assert log.state.schema_by_id(1)  # ids stay resolvable for data already written
    assert log.run(log.state.register("s", record("z"))) == 2


def test_hard_delete_needs_a_soft_delete_first():
    log = Log()
    log.run(log.state.register("s", record("x")))
    with pytest.raises(RegistryError) as error:
        log.state.delete_subject("s", permanent=True)
    assert error.value.error_code == 40405
    with pytest.raises(RegistryError) as error:
        log.state.delete_version("s", 1, permanent=True)
    assert error.value.error_code == 40407


@pytest.mark.parametrize("call, code", [
    (lambda s: s.live_versions("missing"), 40401),
    (lambda s: s.version("s", 9), 40402),
    (lambda s: s.schema_by_id(99), 40403),
    (lambda s: s.version("s", "first"), 42202),
    (lambda s: s.register("s", "{not json"), 42201),
    (lambda s: s.set_config(None, "SIDEWAYS"), 42203),
])
def test_errors_carry_confluent_codes(call, code):
    log = Log()
    log.run(log.state.register("s", record("x")))
    with pytest.raises(RegistryError) as error:
        call(log.state)
    assert error.value.error_code == code


def test_replaying_the_log_rebuilds_the_same_state():
    log = Log()
    log.run(log.state.register("s", record("x")))
    log.run(log.state.register("s", record("x", optional=("y",))))
    log.run(log.state.set_config(None, "FULL"))
    log.run(log.state.delete_version("s", 1, permanent=False))
    assert log.replay() == log.state


def test_two_instances_racing_for_an_id_first_in_the_log_wins():
    log = Log()
    log.run(log.state.register("s", record("x")))
    # Both instances see max id 1 and claim id 2 for different new schemas in different subjects.
    _, claim_a = log.state.register("a", record("a"))
    _, claim_b = log.state.register("b", record("b"))
    assert claim_a[0][1]["id"] == claim_b[0][1]["id"] == 2
    for key, value in claim_a + claim_b:  # the log orders them: a, then b
        log.records.append((key, value))
        log.state.apply(key, value)
    assert log.state.took_effect(*claim_a[0]) and not log.state.took_effect(*claim_b[0])
    assert log.run(log.state.register("b", record("b"))) == 3  # b retries and gets a fresh id
    assert log.state.schema_by_id(2) != log.state.schema_by_id(3)
    assert log.replay() == log.state
