"""A local Flink standalone cluster for the end-to-end tests (started by the project itself)."""

from __future__ import annotations

import pytest

from vigil import flink_cluster


@pytest.fixture(scope="session")
def flink_without_kafka():
    """The cluster alone, for drills that need no broker (and may run under another VIGIL_STATE,
    where the `kafka` fixture finds no pid file of the machine's broker). Stopped at the end only
    if this session started it."""
    settings = flink_cluster.ClusterSettings()
    was_running = flink_cluster.is_running(settings)
    flink_cluster.start(settings, taskmanagers=1, log=lambda *_: None)
    yield settings
    if not was_running:
        flink_cluster.stop(log=lambda *_: None)


@pytest.fixture(scope="session")
def flink(kafka, flink_without_kafka):
    return flink_without_kafka


@pytest.fixture(autouse=True)
def _cluster_up_before_each_test(request):
    """If an earlier test left the session's cluster down, start it again (and say so) before a
    test that uses it: one test's failure must not become every later test's."""
    if not {"flink", "flink_without_kafka"} & set(request.fixturenames):
        return
    settings = request.getfixturevalue("flink_without_kafka")
    if not flink_cluster.is_running(settings):
        print(f"\nflink: the cluster on REST port {settings.rest_port} was down before this test; starting it again")
        flink_cluster.start(settings, taskmanagers=1, log=print)
