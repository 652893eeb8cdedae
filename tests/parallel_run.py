"""How the test suite runs on two pytest-xdist workers (`make test`: `-n 2`), loaded through
pytest.ini (`-p tests.parallel_run`).

Most of the suite's time is waiting (a job's start-up, checkpoints, a TaskManager's recovery), so
two workers overlap it on a 2-core machine. What must hold for that:
- Each test file runs on one worker (its module fixtures, e.g. four bounded fraud job runs, run
  once), and every end-to-end test on the same one: they share, and kill, the standalone cluster's
  TaskManagers.
- The broker, the schema registry and PostgreSQL are started once by the controller, before the
  workers, and stopped at the end only if it started them: a worker's session fixtures then find
  them running and never stop them under the other worker.
- Hypothesis has no per-example deadline: a busy neighbour makes an example slow, not wrong.
- The tests' Flink cluster is their own (folder <state>/flink-tests, REST port 18181): a cluster
  the user runs (`make demo` leaves one with its three jobs in every slot) is neither used, nor
  waited on for slots, nor have its TaskManagers killed. Set the variables to override.
Without -n, nothing here changes how pytest runs, except the deadline.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

from vigil.paths import state_dir

# Before any vigil module reads them (ClusterSettings' defaults are read at import); xdist's
# workers inherit them from the controller.
os.environ.setdefault("VIGIL_FLINK_STATE", str(state_dir() / "flink-tests"))
os.environ.setdefault("VIGIL_FLINK_REST_PORT", "18181")
os.environ.setdefault("VIGIL_FLINK_RPC_PORT", "16223")
os.environ.setdefault("VIGIL_SQL_GATEWAY_PORT", "18183")

settings.register_profile("vigil", deadline=None)
settings.load_profile("vigil")

CLUSTER_SCOPE = "tests/e2e (one standalone cluster)"
_started: list = []


def _is_xdist_controller(config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_xdist_make_scheduler(config, log):
    """Whole files to a worker, and the end-to-end files together as one (pytest-xdist's
    loadgroup marks do not take effect under pytest 9: its node-id suffix is ignored)."""
    from xdist.scheduler import LoadFileScheduling

    class FileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return CLUSTER_SCOPE if Path(path).parent.name == "e2e" else path

    return FileScheduling(config, log)


def pytest_sessionstart(session):
    if not _is_xdist_controller(session.config):
        return
    from vigil import kafka_broker
    from vigil.registry import service as registry_service
    from vigil.serving import postgres

    broker = kafka_broker.BrokerSettings()
    if not kafka_broker.is_running(broker):
        kafka_broker.start(broker)
        _started.append(kafka_broker.stop)
    registry = registry_service.RegistrySettings()
    if not registry_service.is_running(registry):
        registry_service.start(broker.bootstrap, registry, log=lambda *_: None)
        _started.append(lambda: registry_service.stop(registry, log=lambda *_: None))
    database = postgres.PgSettings()
    if not postgres.is_running(database):
        postgres.ensure_running(database, log=lambda *_: None)
        _started.append(lambda: postgres.stop(log=lambda *_: None))


def pytest_sessionfinish(session, exitstatus):
    if not _is_xdist_controller(session.config):
        return
    while _started:
        _started.pop()()
