"""A local Flink standalone cluster for the end-to-end tests (started by the project itself)."""

from __future__ import annotations

import pytest

from vigil import flink_cluster


@pytest.fixture(scope="session")
def _flink_session():
    """Started once; stopped at the end only if this session started it."""
    settings = flink_cluster.ClusterSettings()
    was_running = flink_cluster.is_running(settings)
    flink_cluster.start(settings, taskmanagers=1, log=lambda *_: None)
    yield settings
    if not was_running:
        flink_cluster.stop(log=lambda *_: None)


@pytest.fixture
def flink_without_kafka(_flink_session):
    """The cluster alone, for drills that need no broker (and may run under another VIGIL_STATE,
    where the `kafka` fixture finds no pid file of the machine's broker). Checked before each
    test: if an earlier test left it down, it is started again (and said so), so one test's
    failure does not become every later test's."""
    settings = _flink_session
    if not flink_cluster.is_running(settings):
        print(f"\nflink: the cluster on REST port {settings.rest_port} was down before this test; starting it again")
        flink_cluster.start(settings, taskmanagers=1, log=print)
    return settings


@pytest.fixture
def flink(kafka, flink_without_kafka):
    return flink_without_kafka
