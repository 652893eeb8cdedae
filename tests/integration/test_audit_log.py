"""The audit log on the session's Kafka broker (vigil.audit_log): entries appended by concurrent
writers form one chain; `vigil audit verify` passes on it, and fails, naming the evidence, when a
forged record is appended or the oldest entries are deleted from the topic (Kafka's
delete-records); `vigil audit show` lists what was done."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from vigil import audit_chain, audit_log, kafka_io
from vigil.paths import PROJECT_ROOT


@pytest.fixture
def topic(kafka, tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_STATE", str(tmp_path))
    monkeypatch.setenv("VIGIL_ACTOR", "test-operator")
    return f"audit-test-{uuid.uuid4().hex[:8]}"


def _vigil(kafka: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigil.cli", "audit", *args, "--bootstrap", kafka],
                          cwd=PROJECT_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)


def test_concurrent_appends_form_one_chain_that_verifies_and_shows(kafka, topic):
    def write(i: int) -> dict:
        return audit_log.append(kafka, "rules.publish", f"tenant-{i}", before=None, after={"velocity_1m": i},
                                topic=topic)

    with ThreadPoolExecutor(max_workers=6) as pool:
        written = list(pool.map(write, range(12)))
    assert sorted(e["seq"] for e in written) == list(range(1, 13))
    log = audit_log.entries(kafka, topic)
    assert [e["seq"] for e in log] == list(range(1, 13))
    assert audit_chain.verify(log, audit_log.anchors(topic)) == []
    assert stat.S_IMODE(audit_log.anchors_file(topic).stat().st_mode) == 0o600
    config = audit_log.spec(topic).config
    assert config["cleanup.policy"] == "delete" and config["retention.ms"] == "-1"

    verified = _vigil(kafka, "verify", "--topic", topic)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "12 entries, chain intact" in verified.stdout and "12 anchor(s) match" in verified.stdout
    shown = _vigil(kafka, "show", "--topic", topic, "--last", "3", "--json")
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [10, 11, 12]
    assert all(r["actor"] == "test-operator" and r["action"] == "rules.publish" for r in rows)


def test_a_forged_record_fails_verification(kafka, topic):
    from confluent_kafka import Producer
    for i in range(3):
        audit_log.append(kafka, "schema.register", f"subject-{i}", topic=topic)
    newest = audit_log.entries(kafka, topic)[-1]
    forged = dict(newest, action="schema.delete", target="events-value")   # same seq and hash: a copy, altered
    producer = Producer({"bootstrap.servers": kafka})
    producer.produce(topic, value=json.dumps(forged).encode())
    producer.flush(10)
    verified = _vigil(kafka, "verify", "--topic", topic)
    assert verified.returncode == 1
    assert "TAMPERED" in verified.stdout and "modified" in verified.stdout


def test_deleting_the_oldest_entries_fails_verification(kafka, topic):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient
    for i in range(4):
        audit_log.append(kafka, "job.submit", f"job-{i}", topic=topic)
    assert kafka_io.end_offsets(kafka, topic)[0] == 4
    admin = AdminClient({"bootstrap.servers": kafka})       # kept: its futures complete on its thread
    futures = admin.delete_records([TopicPartition(topic, 0, 2)], request_timeout=30, operation_timeout=30)
    for future in futures.values():
        future.result(30)
    verified = _vigil(kafka, "verify", "--topic", topic)
    assert verified.returncode == 1, verified.stdout
    assert "does not start at the first entry" in verified.stdout
    assert "oldest entries were removed" in verified.stdout


def test_administrative_commands_leave_entries_with_before_and_after(kafka, topic):
    """`vigil rules set` twice: each is recorded with the actor, the second entry's "before" is
    what the first one set, as `vigil audit show` lists them."""
    env = {**os.environ, "VIGIL_AUDIT_TOPIC": topic, "VIGIL_BOOTSTRAP": kafka}
    rules_topic = f"{topic}-rules"

    def vigil(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "vigil.cli", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    vigil("rules", "set", "--tenant", "t-audit", "velocity_1m=11", "--topic", rules_topic, "--bootstrap", kafka)
    vigil("rules", "set", "--tenant", "t-audit", "velocity_1m=12", "--topic", rules_topic, "--bootstrap", kafka)
    shown = vigil("audit", "show", "--json", "--topic", topic, "--bootstrap", kafka)
    first, second = [json.loads(line) for line in shown.stdout.splitlines()]
    assert (first["action"], first["target"], first["actor"]) == ("rules.publish", f"{rules_topic}/t-audit",
                                                                  "test-operator")
    assert first["before"] is None and first["after"]["velocity_1m"] == 11
    assert second["before"]["velocity_1m"] == 11 and second["after"]["velocity_1m"] == 12
    assert vigil("audit", "verify", "--topic", topic, "--bootstrap", kafka).stdout.count("chain intact") == 1
