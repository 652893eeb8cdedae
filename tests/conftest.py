"""Shared fixtures: a real Kafka broker and the schema registry for the session, fresh topics
per test; PostgreSQL (analytics serving) with a fresh database for the session.

All are started by the project itself (vigil.kafka_broker, vigil.registry.service,
vigil.serving.postgres) and stopped at the end only if this session started them. Unit tests
need none.
"""

from __future__ import annotations

import uuid

import pytest

from vigil import kafka_broker, topics
from vigil.registry import service as registry_service


@pytest.fixture(scope="session")
def kafka() -> str:
    settings = kafka_broker.BrokerSettings()
    was_running = kafka_broker.is_running(settings)
    kafka_broker.start(settings)
    yield settings.bootstrap
    if not was_running:
        kafka_broker.stop()


@pytest.fixture(scope="session")
def schema_registry(kafka) -> str:
    """The registry process `vigil infra up` starts; its URL."""
    settings = registry_service.RegistrySettings()
    was_running = registry_service.is_running(settings)
    registry_service.start(kafka, settings, log=lambda *_: None)
    yield settings.url
    if not was_running:
        registry_service.stop(settings, log=lambda *_: None)


@pytest.fixture
def ingest_topics(kafka, schema_registry):
    """Fresh raw/clean/dlq topics for one test: tests never share data."""
    return topics.create_ingest_topics(kafka, f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL `vigil infra up` starts (vigil.serving.postgres); its settings. Stopped at
    the end only if this session started it."""
    from vigil.serving import postgres

    settings = postgres.PgSettings()
    was_running = postgres.is_running(settings)
    postgres.ensure_running(settings, log=lambda *_: None)
    yield settings
    if not was_running:
        postgres.stop(log=lambda *_: None)


@pytest.fixture(scope="session")
def postgres(postgres_server) -> str:
    """A fresh serving database for this session (migrated, partitions made, dropped at the end):
    tests never write into the `vigil` database. Its name; connect with
    vigil.serving.postgres.dsn(role, name)."""
    from vigil.serving import provision

    with provision.scratch_database("vigil_test", postgres_server) as name:
        yield name


@pytest.fixture
def own_database(postgres_server) -> str:
    """A fresh serving database for one test alone, for tests that compare every row of a table
    (the session's `postgres` database holds other tests' rows)."""
    from vigil.serving import provision

    with provision.scratch_database("vigil_own", postgres_server) as name:
        yield name
