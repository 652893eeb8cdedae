"""A local Flink standalone cluster for the end-to-end tests (started by the project itself)."""

from __future__ import annotations

import pytest

from vigil import flink_cluster


@pytest.fixture(scope="session")
def flink(kafka):
    settings = flink_cluster.ClusterSettings()
    was_running = flink_cluster.is_running(settings)
    flink_cluster.start(settings, taskmanagers=1, log=lambda *_: None)
    yield settings
    if not was_running:
        flink_cluster.stop(log=lambda *_: None)
