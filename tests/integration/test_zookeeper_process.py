"""vigil.zookeeper with the real server (ZooKeeper 3.9.5 from Maven Central): it starts on
127.0.0.1, answers the whitelisted four-letter words and no others, stops by pid, and a restart keeps
its data folder. And Flink 2.2.1's own HA client (ZooKeeperUtils, Curator 5 over the ZooKeeper 3.7
client shaded into flink-dist) reads the high-availability.* keys given to it, connects to this
server and writes and reads a znode (one small JVM, no cluster).

Port: VIGIL_ZOOKEEPER_PORT, or a free one of the test's own; state in a folder of the test's own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from vigil import procs, zookeeper

FLINK_CHECK_JAVA = r"""import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.HighAvailabilityOptions;
import org.apache.flink.runtime.highavailability.zookeeper.CuratorFrameworkWithUnhandledErrorListener;
import org.apache.flink.runtime.util.ZooKeeperUtils;
import org.apache.flink.shaded.curator5.org.apache.curator.framework.CuratorFramework;

/** Flink's HA client against a ZooKeeper server (args: quorum): the keys as a config.yaml gives
 *  them, then a znode written and read under Flink's namespace. */
public class FlinkZooKeeperCheck {
  public static void main(String[] args) throws Exception {
    Configuration conf = Configuration.fromMap(Map.of(
        "high-availability.type", "zookeeper",
        "high-availability.zookeeper.quorum", args[0],
        "high-availability.zookeeper.path.root", "/vigil",
        "high-availability.cluster-id", "/drill",
        "high-availability.storageDir", "file:///tmp/vigil-ha"));
    if (!ZooKeeperUtils.isZooKeeperRecoveryMode(conf)
        || !conf.get(HighAvailabilityOptions.HA_STORAGE_PATH).equals("file:///tmp/vigil-ha")) {
      throw new IllegalStateException("Flink did not read the high-availability keys");
    }
    try (CuratorFrameworkWithUnhandledErrorListener curator =
             ZooKeeperUtils.startCuratorFramework(conf, error -> { error.printStackTrace(); System.exit(3); })) {
      CuratorFramework client = curator.asCuratorFramework();
      client.create().creatingParentsIfNeeded().forPath("/check", "written by flink".getBytes());
      System.out.println("namespace=" + client.getNamespace());
      System.out.println("read=" + new String(client.getData().forPath("/check")));
      client.delete().forPath("/check");
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_STATE", str(tmp_path / "state"))
    port = int(os.environ.get("VIGIL_ZOOKEEPER_PORT") or _free_port())
    yield zookeeper.ZooKeeperSettings(port=port)
    zookeeper.stop(log=lambda *_: None)


def test_start_answers_four_letter_words_stops_by_pid_and_restart_keeps_data(settings):
    zookeeper.start(settings, log=print)
    first = zookeeper.pid()
    assert zookeeper.four_letter_word("ruok", settings) == "imok"
    srvr = zookeeper.four_letter_word("srvr", settings)
    assert "Zookeeper version: 3.9.5" in srvr and "Mode: standalone" in srvr
    assert "zk_server_state\tstandalone" in zookeeper.four_letter_word("mntr", settings)
    assert "not in the whitelist" in zookeeper.four_letter_word("conf", settings)
    assert zookeeper.connect_string(settings) == f"127.0.0.1:{settings.port}"
    assert zookeeper.status(settings) == f"zookeeper: running on 127.0.0.1:{settings.port} (pid {first})"
    zookeeper.start(settings, log=print)  # idempotent: the running server is kept
    assert zookeeper.pid() == first
    data = zookeeper.home() / "data" / "version-2"
    written = set(os.listdir(data))
    assert written, "the server wrote no snapshot or transaction log"

    zookeeper.stop(log=print)
    assert not procs.is_alive(first)
    assert not procs.port_open("127.0.0.1", settings.port)
    assert zookeeper.status(settings) == "zookeeper: stopped"

    zookeeper.start(settings, log=print)
    assert zookeeper.pid() != first
    assert written <= set(os.listdir(data)), "the restart lost the data folder"


def test_flink_ha_client_talks_to_the_server(settings, tmp_path):
    from vigil import flink_cluster

    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "a JDK (javac) is needed: the project builds its Java parts with it"
    home = flink_cluster.flink_home()
    classpath = os.pathsep.join(str(jar) for jar in [*home.glob("lib/flink-dist-*.jar"), *home.glob("lib/log4j-*.jar")])
    (tmp_path / "FlinkZooKeeperCheck.java").write_text(FLINK_CHECK_JAVA)
    compiled = subprocess.run([javac, "-cp", classpath, "-d", str(tmp_path), str(tmp_path / "FlinkZooKeeperCheck.java")],
                              capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stderr
    zookeeper.start(settings, log=print)
    ran = subprocess.run([java, "-cp", f"{classpath}{os.pathsep}{tmp_path}", "FlinkZooKeeperCheck",
                          zookeeper.connect_string(settings)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "namespace=vigil/drill" in ran.stdout and "read=written by flink" in ran.stdout
