"""Shared fixtures: a real Kafka broker for the session, fresh topics per test.

The broker is started by the project itself (vigil.kafka_broker) and stopped at the end only if
this session started it. Unit tests need neither.
"""

from __future__ import annotations

import uuid

import pytest

from vigil import kafka_broker, topics


@pytest.fixture(scope="session")
def kafka() -> str:
    settings = kafka_broker.BrokerSettings()
    was_running = kafka_broker.is_running(settings)
    kafka_broker.start(settings)
    yield settings.bootstrap
    if not was_running:
        kafka_broker.stop()


@pytest.fixture
def ingest_topics(kafka):
    """Fresh raw/clean/dlq topics for one test: tests never share data."""
    return topics.create_ingest_topics(kafka, f"test-{uuid.uuid4().hex[:8]}")
