"""The registry against clients nobody here wrote: confluent-kafka's SchemaRegistryClient and
its Avro serializer/deserializer; and a restart that must keep every subject, version and id."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
import uuid
from http.server import ThreadingHTTPServer

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from vigil.registry.kafka_log import KafkaLog
from vigil.registry.server import Registry, make_handler
from vigil.serde import load_schema


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(kafka):
    """start() -> URL of a new registry instance; all instances of a test share one log topic."""
    topic = f"_schemas-test-{uuid.uuid4().hex[:6]}"
    started = []

    def start():
        port = _free_port()
        log = KafkaLog(kafka, topic)
        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(Registry(log)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((server, log))
        return f"http://127.0.0.1:{port}"
    yield start
    for server, log in started:
        server.shutdown()
        log.close()


def test_confluent_client_round_trips_events_and_evolves_the_schema(registry):
    url = registry()
    client = SchemaRegistryClient({"url": url})
    v1 = json.dumps(load_schema("event-v1.avsc"))
    subject = "events.raw-value"
    first = client.register_schema(subject, Schema(v1, "AVRO"))
    assert client.register_schema(subject, Schema(v1, "AVRO")) == first  # idempotent

    serializer = AvroSerializer(client, v1, conf={"auto.register.schemas": False, "use.latest.version": True})
    context = SerializationContext("events.raw", MessageField.VALUE)
    event = {"event_id": "e1", "event_time": 1_795_000_000_000, "tenant_id": "t1", "merchant_id": "m1",
             "user_id": "u1", "event_type": "page_view", "schema_version": 1}
    payload = serializer(event, context)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == first
    decoded = AvroDeserializer(client)(payload, context)
    assert decoded["event_id"] == "e1" and decoded["tenant_id"] == "t1"

    v2 = load_schema("event-v2.avsc")  # adds payment_method and loyalty_tier, default null
    second = client.register_schema(subject, Schema(json.dumps(v2), "AVRO"))
    assert second != first
    assert client.get_versions(subject) == [1, 2]  # (get_latest_version is cached by the client)

    broken = load_schema("event-v1.avsc")
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "schema_version"] + [
        {"name": "schema_version", "type": "string"}]
    with pytest.raises(SchemaRegistryError) as error:
        client.register_schema(subject, Schema(json.dumps(broken), "AVRO"))
    assert error.value.http_status_code == 409 and "schema_version" in error.value.error_message


def test_state_survives_a_restart_and_a_second_instance_agrees(registry):
    url = registry()
    client = SchemaRegistryClient({"url": url})
    ids = {name: client.register_schema(f"{name}-value", Schema(json.dumps(
        {"type": "record", "name": name, "fields": [{"name": "a", "type": "string"}]}), "AVRO"))
        for name in ("alpha", "beta")}
    other = SchemaRegistryClient({"url": registry()})  # a second instance on the same log
    for name, schema_id in ids.items():
        assert other.get_latest_version(f"{name}-value").schema_id == schema_id
    assert sorted(other.get_subjects()) == ["alpha-value", "beta-value"]


def test_bad_requests_get_confluent_errors_and_store_nothing(registry):
    url = registry()

    def call(method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert call("POST", "/subjects/s/versions", {"schema": "{not json"})[1]["error_code"] == 42201
    assert call("GET", "/subjects/nope/versions")[1]["error_code"] == 40401
    assert call("GET", "/schemas/ids/999")[1]["error_code"] == 40403
    assert call("PUT", "/config", {"compatibility": "SIDEWAYS"})[1]["error_code"] == 42203
    huge = {"schema": json.dumps({"type": "record", "name": "R", "fields": [], "doc": "x" * 2_000_000})}
    assert call("POST", "/subjects/s/versions", huge)[0] == 413
    assert call("GET", "/subjects")[1] == []
