"""Jars from Maven Central, resolved once with `mvn` into the cache folder.

Sets, each described by a pom under infra/maven/:
- `kafka-broker`: the Kafka broker and its runtime dependencies (a classpath folder);
- `kafka-jmx-exporter`: the Prometheus JMX exporter agent the broker JVM loads (one shaded jar);
- `zookeeper`: a ZooKeeper server and its dependencies (a classpath folder; vigil.zookeeper);
- `flink-connectors`: shaded Flink connector/format jars handed to every job (pipeline.jars);
- `flink-jdbc`: the JDBC connector for PostgreSQL and its driver (analytics jobs, SQL sessions);
- `flink-sql-gateway`: the SQL Gateway jar the wheel lacks (SQL client and gateway);
- `flink-s3`: Flink's S3 file system plugin (Presto) for checkpoints and savepoints in an
  S3-compatible store (vigil.object_store places it under the cluster's plugins/ folder).
A marker file holding the pom's hash makes resolution idempotent and re-runs it when a pom changes.

Plus Vigil's own jars, built from java/ with the JDK's javac against the Flink jars of the
installed apache-flink wheel (so they always match the running Flink): `vigil-formats` (the
`dlq-*` formats that route undecodable records to dead-letter topics instead of failing a job)
and `vigil-runtime` (the TaskManager's embedded-Python warm-up).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from vigil.paths import PROJECT_ROOT, cache_dir

POM_DIR = PROJECT_ROOT / "infra" / "maven"
JAR_SETS = {
    # name: (pom file, copy transitive dependencies?)
    "kafka-broker": ("kafka-broker.pom.xml", True),
    # the broker's metrics for Prometheus (vigil.kafka_broker, ops/kafka/jmx-exporter.yml)
    "kafka-jmx-exporter": ("kafka-jmx-exporter.pom.xml", False),
    # ZooKeeper for Flink JobManager high availability in local drills (vigil.zookeeper)
    "zookeeper": ("zookeeper.pom.xml", True),
    "flink-connectors": ("flink-connectors.pom.xml", False),
    # the JDBC connector (PostgreSQL) and driver: analytics jobs, SQL client and gateway sessions
    "flink-jdbc": ("flink-jdbc.pom.xml", False),
    # the SQL Gateway jar, which the SQL client and bin/sql-gateway.sh need (vigil.sql_cli)
    "flink-sql-gateway": ("flink-sql-gateway.pom.xml", False),
    # the S3 file system plugin (one shaded jar): state in the object store (vigil.object_store)
    "flink-s3": ("flink-s3.pom.xml", False),
}


def jar_dir(name: str) -> Path:
    return cache_dir() / "jars" / name


def ensure(name: str, log=print) -> Path:
    """Resolve the jar set `name` if the cache does not hold it for the current pom; return its folder."""
    pom_name, transitive = JAR_SETS[name]
    pom = POM_DIR / pom_name
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = jar_dir(name)
    marker = target / ".resolved"
    if marker.exists() and marker.read_text() == digest:
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn is not installed: it is needed once to fetch jars from Maven Central")
    log(f"resolving {name} jars from Maven Central into {target} (first run only)")
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={staging}", f"-DexcludeTransitive={'false' if transitive else 'true'}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mvn failed for {pom_name}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker.write_text(digest)
    return target


JAVA_DIR = PROJECT_ROOT / "java"


def vigil_jar(module: str, log=print) -> Path:
    """java/<module> compiled and packed once per source version (cached by the sources' hash):
    `vigil-formats` is handed to every job (pipeline.jars), `vigil-runtime` goes into the local
    cluster's lib/ (vigil.flink_cluster)."""
    import pyflink

    flink_home = Path(pyflink.__file__).parent
    source = JAVA_DIR / module / "src" / "main"
    sources = sorted(p for p in source.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in sources + [flink_home / "version.py"]:
        digest.update(str(path.relative_to(path.parents[2])).encode() + path.read_bytes())
    target = cache_dir() / "jars" / module / f"{module}-{digest.hexdigest()[:16]}.jar"
    if target.exists():
        return target
    for tool in ("javac", "jar"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: a JDK 17 is needed to build java/{module} "
                               "(Debian: apt-get install openjdk-17-jdk-headless)")
    log(f"building {target.name} from java/{module}")
    classpath = f"{flink_home}/lib/*:{flink_home}/opt/*:{jar_dir('flink-connectors')}/*"
    with tempfile.TemporaryDirectory() as build:
        java_files = [str(p) for p in sources if p.suffix == ".java"]
        result = subprocess.run(["javac", "--release", "17", "-nowarn", "-cp", classpath, "-d", build, *java_files],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"javac failed for java/{module}:\n{result.stderr[-3000:]}")
        shutil.copytree(source / "resources", build, dirs_exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Own staging name: two clients (parallel `flink run`s) may build the same jar at once.
        staging = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.staging")
        subprocess.run(["jar", "cf", str(staging), "-C", build, "."], check=True)
        staging.rename(target)
    return target


def flink_connector_jars() -> list[Path]:
    connectors = sorted(ensure("flink-connectors").glob("*.jar"))
    return connectors + [vigil_jar("vigil-formats")]


def jdbc_jars() -> list[Path]:
    """The JDBC connector (core + PostgreSQL dialect) and the PostgreSQL driver."""
    return sorted(ensure("flink-jdbc").glob("*.jar"))
