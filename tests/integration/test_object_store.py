"""vigil.object_store with the real server (infra/s3store, gofakes3 over bbolt, built with go) and
Flink 2.2.1 writing to it through the Presto S3 plugin from Maven Central.

- The store keeps objects across a restart, creates its bucket at start, keeps its key pair in a
  0600 file and refuses requests that are unsigned or signed with another key.
- A PyFlink job in a local MiniCluster (its own process, FLINK_PLUGINS_DIR = plugins_dir())
  checkpoints every 500 ms into s3://bucket/<prefix>/checkpoints and takes a savepoint into
  .../savepoints; a second job in the same JVM restores from that savepoint's s3:// URI and
  checkpoints in turn. The list helpers find each complete `_metadata`.

A MiniCluster does not set up plugin file systems by itself (the cluster entrypoints do, with
FileSystem.initialize and a plugin manager): the job script does the same call first. PyFlink also
replaces FLINK_PLUGINS_DIR with the wheel's plugins/ unless FLINK_HOME is set: the test sets both.

Port: VIGIL_S3_PORT, or a free one of the test's own; state in a folder of the test's own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from vigil import object_store, procs

JOB = r"""
import json, os, sys, time
from pyflink.common import Configuration
from pyflink.java_gateway import get_gateway
from pyflink.table import EnvironmentSettings, TableEnvironment

settings = json.loads(sys.argv[1])
jvm = get_gateway().jvm


def configuration(extra):
    conf = Configuration()
    for key, value in {**settings, **extra}.items():
        conf.set_string(key, value)
    return conf


# What Flink's cluster entrypoints do at start: file systems from FLINK_PLUGINS_DIR, configured
# with the s3.* keys. A MiniCluster leaves this to its host.
first = configuration({})._j_configuration
jvm.org.apache.flink.core.fs.FileSystem.initialize(
    first, jvm.org.apache.flink.core.plugin.PluginUtils.createPluginManagerFromRootFolder(first))


def run(extra):
    tenv = TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(configuration(extra)).build())
    tenv.execute_sql("CREATE TABLE clicks (k INT, v BIGINT) WITH ('connector' = 'datagen', "
                     "'rows-per-second' = '200', 'fields.k.min' = '1', 'fields.k.max' = '20')")
    tenv.execute_sql("CREATE TABLE counts (k INT, c BIGINT) WITH ('connector' = 'blackhole')")
    # a keyed count: the checkpoints carry real operator state
    client = tenv.execute_sql("INSERT INTO counts SELECT k, COUNT(*) FROM clicks GROUP BY k").get_job_client()
    return client


first_job = run({})
print("job", first_job.get_job_id(), flush=True)
# The test says when it has seen a checkpoint of this job in the store (on a busy machine the
# first periodic checkpoint can come after a savepoint would): only then the savepoint and cancel.
while not os.path.exists(sys.argv[2]):
    time.sleep(0.2)
deadline = time.time() + 60
while True:  # a savepoint fails until every task runs: retry
    try:
        # PyFlink 2.2.1's trigger_savepoint omits the format argument Java requires: call Java
        path = first_job._j_job_client.triggerSavepoint(
            None, jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL).get()
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(1)
print("savepoint", path, flush=True)
first_job.cancel().result()
restored = run({"execution.state-recovery.path": path})
print("restored", restored.get_job_id(), flush=True)
time.sleep(600)  # the test kills this process once it has seen what it needs
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_STATE", str(tmp_path / "state"))
    settings = object_store.StoreSettings(port=int(os.environ.get("VIGIL_S3_PORT") or _free_port()),
                                          bucket="vigil-test")
    yield settings
    object_store.stop(log=lambda *_: None)


def test_objects_survive_a_restart_and_only_our_key_is_accepted(store, tmp_path):
    object_store.start(store, log=print)
    first = object_store.pid()
    assert stat.S_IMODE(object_store.credentials_file().stat().st_mode) == 0o600
    assert object_store.status(store) == f"s3store: running, http://127.0.0.1:{store.port}, bucket vigil-test (pid {first})"
    object_store.put_object("vigil-test", "p/chk-1/_metadata", b"written before the restart", store)
    object_store.ensure_bucket("second", store)
    object_store.ensure_bucket("second", store)  # idempotent

    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(f"{object_store.endpoint(store)}/vigil-test?list-type=2", timeout=5)
    assert unsigned.value.code == 403
    other_key = tmp_path / "other.json"
    other_key.write_text(json.dumps({"access_key": object_store.credentials().access_key, "secret_key": "not-ours"}))
    refused = subprocess.run([str(object_store.binary()), "ls", "-endpoint", object_store.endpoint(store),
                              "-credentials", str(other_key), "vigil-test"], capture_output=True, text=True)
    assert refused.returncode != 0 and "SignatureDoesNotMatch" in refused.stderr

    object_store.stop(log=print)
    assert not procs.is_alive(first) and not procs.port_open("127.0.0.1", store.port)
    assert object_store.status(store) == "s3store: stopped"

    object_store.start(store, log=print)
    assert object_store.pid() != first
    assert object_store.get_object("vigil-test", "p/chk-1/_metadata", store) == b"written before the restart"
    assert [o.key for o in object_store.list_objects("vigil-test", "p/", store)] == ["p/chk-1/_metadata"]
    assert object_store.newest_checkpoint("vigil-test", "p/", store) == "s3://vigil-test/p/chk-1"
    assert object_store.list_objects("second", "", store) == []


def _wait_for_line(log_path, word: str, job: subprocess.Popen, timeout: float) -> str:
    """The rest of the job's first complete output line starting with `word`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines(keepends=True):
            if line.startswith(word + " ") and line.endswith("\n"):
                return line.split(" ", 1)[1].strip()
        if job.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"no '{word}' from the job:\n{log_path.read_text(errors='replace')[-4000:]}")


def test_flink_checkpoints_savepoints_and_restores_through_the_store(store, tmp_path):
    from vigil import flink_cluster

    object_store.start(store, log=print)
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    settings = object_store.flink_settings(store.bucket, prefix, store)
    assert settings["execution.checkpointing.dir"] == f"s3://vigil-test/{prefix}/checkpoints"
    settings.update({"execution.checkpointing.interval": "500 ms",
                     "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION"})
    plugins = object_store.plugins_dir(tmp_path / "plugins")
    assert (plugins / "s3-fs-presto").is_dir() and (plugins / "metrics-prometheus").exists()
    (tmp_path / "job.py").write_text(JOB)
    env = dict(os.environ, FLINK_HOME=str(flink_cluster.flink_home()), FLINK_PLUGINS_DIR=str(plugins))
    log_path, go = tmp_path / "job.out", tmp_path / "go"
    with open(log_path, "w") as log:
        job = subprocess.Popen([sys.executable, str(tmp_path / "job.py"), json.dumps(settings), str(go)], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first_id = _wait_for_line(log_path, "job", job, 60)
        procs.wait_until(lambda: object_store.newest_checkpoint(
            store.bucket, f"{prefix}/checkpoints/{first_id}/", store) is not None, 60,
            "a checkpoint of the first job in the store")
        go.touch()
        savepoint = _wait_for_line(log_path, "savepoint", job, 60)
        restored_id = _wait_for_line(log_path, "restored", job, 30)
        assert savepoint.startswith(f"s3://vigil-test/{prefix}/savepoints/savepoint-")

        def checkpointed(job_id: str) -> bool:
            return object_store.newest_checkpoint(store.bucket, f"{prefix}/checkpoints/{job_id}/", store) is not None
        procs.wait_until(lambda: checkpointed(restored_id), 40, "a checkpoint of the restored job in the store")
    finally:
        procs.kill_tree(job.pid, signal.SIGKILL)  # the job's Python and its gateway JVM
        job.wait(timeout=30)

    newest = object_store.newest_checkpoint(store.bucket, f"{prefix}/checkpoints/{first_id}/", store)
    assert newest and re.fullmatch(rf"s3://vigil-test/{prefix}/checkpoints/{first_id}/chk-\d+", newest), newest
    assert object_store.newest_savepoint(store.bucket, f"{prefix}/savepoints/", store) == savepoint
    # the restored job's checkpoint is newer than the savepoint it started from
    assert object_store.newest_restore_point(store.bucket, f"{prefix}/checkpoints/{restored_id}/",
                                             [f"{prefix}/savepoints/"], store).startswith(
        f"s3://vigil-test/{prefix}/checkpoints/{restored_id}/chk-")
